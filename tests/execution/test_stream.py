"""``/ws/requests/<id>``: the caller watches status, stdout and the result; others cannot."""
import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from execution import services
from marketplace.asgi import application
from marketplace.services import api_key_authenticate
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]


def test_the_caller_sees_running_stdout_and_the_result(probe, user, raw_key):
    key = api_key_authenticate(raw=raw_key)
    payload = {"content_type": "json", "data": {"action": "print", "text": "line one"}}
    invocation = services.invocation_admit(
        key=key, user=user, owner=user.username, name="probe", version=None, payload=payload,
        input_bytes=10, options=services.CallOptions(stdout=True))

    async def watch():
        communicator = WebsocketCommunicator(
            application, f"/ws/requests/{invocation.request_id}",
            headers=HEADERS + [(b"authorization", raw_key.encode())])
        connected, _ = await communicator.connect()
        assert connected
        messages = [await communicator.receive_json_from(timeout=5)]
        run = asyncio.ensure_future(sync_to_async(services.invocation_run, thread_sensitive=False)(
            invocation_pk=invocation.pk, payload=payload))
        while messages[-1]["type"] != "result":
            messages.append(await communicator.receive_json_from(timeout=60))
        await run
        return messages

    messages = async_to_sync(watch)()
    assert messages[0] == {"type": "status", "status": "queued"}
    assert {"type": "status", "status": "running"} in messages
    assert {"type": "stdout", "line": "line one"} in messages
    assert messages[-1]["result"] == "printed"


def test_someone_else_cannot_watch(probe, user, raw_key, make_key):
    key = api_key_authenticate(raw=raw_key)
    invocation = services.invocation_admit(
        key=key, user=user, owner=user.username, name="probe", version=None,
        payload={"content_type": "text", "data": "x"}, input_bytes=1,
        options=services.CallOptions())
    stranger = make_key(UserFactory())

    async def connect():
        communicator = WebsocketCommunicator(
            application, f"/ws/requests/{invocation.request_id}?key={stranger}", headers=HEADERS)
        return await communicator.connect()

    assert async_to_sync(connect)() == (False, 4404)
