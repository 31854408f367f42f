"""``/ws/requests/<id>``: the caller watches status, stdout and the result; others cannot."""
import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from execution import services
from execution.models import Invocation
from marketplace.asgi import application
from marketplace.services import api_key_authenticate
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]


def _admit(user, raw_key, payload, **options):
    return services.invocation_admit(
        key=api_key_authenticate(raw=raw_key), user=user, owner=user.username, name="probe",
        version=None, payload=payload, input_bytes=10, options=services.CallOptions(**options))


async def _messages_until_result(invocation, raw_key, *, wait: float = 60) -> list:
    """Connect to the call's stream and collect every message up to the result."""
    communicator = WebsocketCommunicator(
        application, f"/ws/requests/{invocation.request_id}",
        headers=HEADERS + [(b"authorization", raw_key.encode())])
    assert (await communicator.connect())[0]
    messages = [await communicator.receive_json_from(timeout=5)]
    while messages[-1]["type"] != "result":
        messages.append(await communicator.receive_json_from(timeout=wait))
    return messages


def _watch_while_it_runs(invocation, payload, raw_key, on_message=None) -> list:
    """Connect to the call's stream, run the call, and collect every message up to the
    result; ``on_message(message)`` (awaited) may note something as each arrives."""

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
            if on_message is not None:
                await on_message(messages[-1])
        await run
        return messages

    return async_to_sync(watch)()


def test_the_caller_sees_running_stdout_and_the_result(probe, user, raw_key):
    payload = {"content_type": "json", "data": {"action": "print", "text": "line one"}}
    invocation = _admit(user, raw_key, payload, stdout=True)
    messages = _watch_while_it_runs(invocation, payload, raw_key)
    assert messages[0] == {"type": "status", "status": "queued"}
    assert {"type": "status", "status": "running"} in messages
    assert {"type": "stdout", "line": "line one"} in messages
    assert messages[-1]["result"] == "printed"


def test_lines_arrive_while_the_call_is_still_running(probe, user, raw_key):
    payload = {"content_type": "json",
               "data": {"action": "print_slowly", "lines": ["first", "second"], "pause": 1.5}}
    invocation = _admit(user, raw_key, payload, stdout=True)
    status_at = sync_to_async(lambda: Invocation.objects.get(pk=invocation.pk).status,
                              thread_sensitive=False)
    lines = []  # (line, the call's status in the database when it arrived)

    async def note(message):
        if message["type"] == "stdout":
            lines.append((message["line"], await status_at()))

    messages = _watch_while_it_runs(invocation, payload, raw_key, on_message=note)
    assert lines == [("first", "running"), ("second", "running")]
    assert messages[-1]["result"] == "printed"
    assert messages[-1]["metadata"]["stdout"] == "first\nsecond\n"


def test_a_watcher_who_comes_mid_call_gets_what_was_printed_before_then_the_rest_once(
        probe, user, raw_key, settings):
    """Two lines printed before the watcher connects, one after: it gets all three, in
    order, each once, while the call still runs, then the result."""
    import time

    from execution import stdout_backlog

    payload = {"content_type": "json", "data": {
        "action": "print_slowly", "lines": ["first", "second", "third"], "pause": 1.5}}
    invocation = _admit(user, raw_key, payload, stdout=True)

    async def come_late():
        run = asyncio.ensure_future(sync_to_async(services.invocation_run,
                                                  thread_sensitive=False)(
            invocation_pk=invocation.pk, payload=payload))
        deadline = time.monotonic() + 60
        while len(await sync_to_async(stdout_backlog.read)(invocation.request_id)) < 2:
            assert time.monotonic() < deadline and not run.done()
            await asyncio.sleep(0.05)
        messages = await _messages_until_result(invocation, raw_key)
        await run
        return messages

    messages = async_to_sync(come_late)()
    assert messages[0] == {"type": "status", "status": "running"}
    assert [m["line"] for m in messages if m["type"] == "stdout"] == ["first", "second",
                                                                       "third"]
    assert messages[-1]["result"] == "printed"
    # Let go a minute after the call (a watcher that read it running may still come).
    if settings.REDIS_URL:
        from marketplace.redis_client import redis_client

        assert 0 < redis_client().ttl(f"algostore:stdout:{invocation.request_id}") <= 60
    else:
        assert str(invocation.request_id) in stdout_backlog._ended


def test_a_watcher_stays_through_a_silence_longer_than_a_redis_read(probe, user, raw_key):
    """Nothing to send for longer than the Redis client's default read timeout (5 s): the
    watcher is still there for the result (it was dropped at 5 s, an error in the log)."""
    payload = {"content_type": "json", "data": {"action": "sleep", "seconds": 6.5}}
    invocation = _admit(user, raw_key, payload, stdout=True, timeout=30)
    messages = _watch_while_it_runs(invocation, payload, raw_key)
    assert messages[-1]["result"] == "slept"


def test_lines_are_not_streamed_without_stdout(probe, user, raw_key):
    payload = {"content_type": "json", "data": {"action": "print", "text": "secret line"}}
    invocation = _admit(user, raw_key, payload)
    messages = _watch_while_it_runs(invocation, payload, raw_key)
    assert [m for m in messages if m["type"] == "stdout"] == []
    assert messages[-1]["result"] == "printed"
    assert "stdout" not in messages[-1]["metadata"]


def test_a_watcher_after_the_end_gets_the_lines_only_if_the_call_could_show_them(
        probe, user, raw_key):
    """The printed lines are kept (for the owner's eyes), and may print secrets: a caller
    who connects after the end of a call made without stdout=true (or by someone other
    than the owner, which is the same) gets the result without them."""
    payload = {"content_type": "json", "data": {"action": "print", "text": "secret line"}}
    for stdout in (False, True):
        invocation = _admit(user, raw_key, payload, stdout=stdout)
        services.invocation_run(invocation_pk=invocation.pk, payload=payload)
        assert Invocation.objects.get(pk=invocation.pk).stdout == "secret line\n"

        messages = async_to_sync(_messages_until_result)(invocation, raw_key, wait=5)
        lines = [m["line"] for m in messages if m["type"] == "stdout"]
        assert lines == (["secret line"] if stdout else []), stdout
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


def test_a_client_without_an_origin_watches_with_its_key_and_a_foreign_origin_is_refused(
        probe, user, raw_key):
    """A non-browser client (no Origin header) with ``?key=`` was refused (403) by the
    origin check; a browser page on another site still is."""
    invocation = _admit(user, raw_key, {"content_type": "text", "data": "x"})
    services.invocation_run(invocation_pk=invocation.pk,
                            payload={"content_type": "text", "data": "x"})

    async def connect(headers):
        communicator = WebsocketCommunicator(
            application, f"/ws/requests/{invocation.request_id}?key={raw_key}", headers=headers)
        connected, _ = await communicator.connect()
        messages = []
        while connected and (not messages or messages[-1]["type"] != "result"):
            messages.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
        return connected, messages[-1] if messages else None

    connected, message = async_to_sync(connect)([(b"host", b"127.0.0.1")])
    assert connected and message["result"] == "echo: x"
    foreign = [(b"host", b"127.0.0.1"), (b"origin", b"https://evil.example")]
    assert async_to_sync(connect)(foreign) == (False, None)
