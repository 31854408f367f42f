"""An ASGI guard in front of Django for request bodies that are streamed to storage.

Under ASGI, Django reads a request's whole body (spooling it to a temporary file) before the
view runs, so a view can refuse an oversized upload only after it has been received. This
guard counts the body as it arrives for the given path prefixes and stops it at the limit:
the client gets 413 in the API's envelope and the server never holds more than the limit.
"""
import json

from django.conf import settings

from marketplace.errors import error_body


class BodyLimit:
    def __init__(self, app, *, prefixes: tuple[str, ...], limit_setting: str):
        self.app, self.prefixes, self.limit_setting = app, prefixes, limit_setting

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("PUT", "POST") or not \
                scope.get("path", "").startswith(self.prefixes):
            return await self.app(scope, receive, send)
        limit = getattr(settings, self.limit_setting) + 64 * 1024  # room for form framing
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _refuse(send, limit)
        seen, exceeded, started = 0, False, False

        async def limited_receive():
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}  # Django stops reading and answers nothing
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, tracking_send)
        if exceeded and not started:
            await _refuse(send, limit)


async def _refuse(send, limit: int) -> None:
    body = json.dumps(error_body(f"The body is larger than the limit of {limit} bytes.",
                                 "InputError")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
