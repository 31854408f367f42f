"""Under ASGI an upload is cut off at the size limit as it arrives, before Django spools it."""
import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from marketplace.asgi import application

pytestmark = pytest.mark.django_db


def _put(chunks, headers=()):
    sent, given = [], list(chunks)

    async def receive():
        if given:
            return {"type": "http.request", "body": given.pop(0), "more_body": bool(given)}
        await asyncio.Event().wait()  # a client that stays connected, sending nothing more

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
             "scheme": "http", "path": "/v1/data/.my/big/file.bin", "raw_path": b"",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    async_to_sync(application)(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, len(given)


def test_a_chunked_body_past_the_limit_is_stopped_as_it_arrives(settings):
    settings.DATA_MAX_FILE_BYTES = 100_000  # the guard allows 64 KiB of framing above it
    chunk = b"x" * 65_536
    status, body, unread = _put([chunk] * 40)  # 2.5 MiB offered, no Content-Length
    assert status == 413 and json.loads(body)["error"]["error_type"] == "InputError"
    assert unread >= 36  # it stopped after about 165 KiB: most of the body was never read


def test_a_declared_length_past_the_limit_is_refused_before_reading(settings):
    settings.DATA_MAX_FILE_BYTES = 100_000
    status, _, unread = _put([b"x" * 10] * 5, headers=[(b"content-length", b"999999999")])
    assert status == 413 and unread == 5


def test_a_body_under_the_limit_reaches_the_api(settings):
    settings.DATA_MAX_FILE_BYTES = 100_000
    status, body, _ = _put([b"small"])
    assert status == 401  # no key: Django and the API saw it
    assert json.loads(body)["error"]["error_type"] == "AuthError"
