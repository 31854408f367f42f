"""The invocation API's hot path under ASGI: a sync call with an API key, served without
Django's request cycle, and without holding a thread while the call runs.

``POST /v1/algo/{owner}/{name}[/{version}]`` does the same work as ``AlgoInvokeApi`` through
the same services (the key check, the options, admission with its hold, the queue by name,
the envelope): one hop to a thread for the database work, then an async wait for the result
over the direct result channel. A profile of the full stack under load had Django's
middleware, DRF's dispatch and a thread blocked per waiting request at most of the web
tier's CPU per call.

Everything else goes to Django unchanged, the body replayed: no key (401 there), async
calls (``output=void``, callbacks), a host Django would refuse, an HTTPS redirect, the
embedded mode (no broker: the call runs in-process), and every other path.
"""
import json
import logging
import re
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from execution import results, services
from execution.apis import raw_parts
from marketplace.authentication import key_from_header
from marketplace.errors import ApplicationError, AuthError, error_body

logger = logging.getLogger(__name__)
INVOKE_PATH = re.compile(r"^/v1/algo/([^/]+)/([^/]+)(?:/([^/]+))?$")


class InvokeFastPath:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = _eligible(scope)
        if match is None:
            return await self.app(scope, receive, send)
        body, too_large = await _read_body(receive, settings.EXECUTION_REQUEST_MAX_BYTES)
        if too_large:
            error = services.TooLarge(
                f"The input is larger than {settings.EXECUTION_REQUEST_MAX_BYTES} bytes.")
            return await _send_error(send, error)
        headers = _headers(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                               keep_blank_values=True))
        api_base = _api_base(scope, headers)
        raw_key = key_from_header(headers.get("authorization", ""))
        if (not raw_key or api_base is None or query.get("output") == "void"
                or query.get("callback")):
            return await self.app(scope, _replay(body, receive), send)
        owner, name, version = match.groups()
        try:
            invocation = await sync_to_async(_start, thread_sensitive=False)(
                raw_key=raw_key, owner=owner, name=name, version=version, query=query,
                body=body, content_type=headers.get("content-type", ""), api_base=api_base)
        except ApplicationError as error:
            return await _send_error(send, error)
        except Exception:
            logger.exception("Unhandled error admitting a call to %s/%s", owner, name)
            return await _send_json(send, 500, error_body("Internal server error.",
                                                          "InternalError"))
        envelope = await results.wait_async(invocation.pk,
                                            services.invocation_wait_seconds(invocation))
        if envelope is None:
            envelope = await sync_to_async(_lost, thread_sensitive=False)(invocation)
        if invocation.options.get("output") == "raw":
            status, content_type, payload = raw_parts(envelope)
            return await _send(send, status, content_type, payload)
        return await _send_json(send, 200, envelope)


def _eligible(scope):
    """The path's groups when this request is a call the fast path may serve, else None."""
    if (scope["type"] != "http" or scope["method"] != "POST"
            or settings.CELERY_TASK_ALWAYS_EAGER or not results.direct()
            or not settings.EXECUTION_FAST_PATH):
        return None
    match = INVOKE_PATH.match(scope["path"])
    if match is None or (match.group(1) == "requests" and match.group(3) is None):
        return None  # /v1/algo/requests/{id} is the results API
    if settings.SECURE_SSL_REDIRECT and _scheme(scope, _headers(scope)) != "https":
        return None  # Django redirects it
    return match


def _start(*, raw_key: str, owner: str, name: str, version: str | None, query: dict,
           body: bytes, content_type: str, api_base: str):
    """The database half, in a worker thread: authenticate, admit (with the hold), queue."""
    from marketplace.services import api_key_authenticate

    try:
        key = api_key_authenticate(raw=raw_key)
        options = services.CallOptions.parse(query)
        invocation, payload = services.invocation_start(
            key=key, user=key.user or key.created_by, owner=owner, name=name,
            version=version, body=body, content_type=content_type, options=options,
            api_base=api_base)
        services.invocation_send(invocation=invocation, payload=payload, wait=True)
        return invocation
    finally:
        close_old_connections()  # as Django does at the end of a request


def _lost(invocation):
    try:
        return services.invocation_lost(invocation=invocation)
    finally:
        close_old_connections()


def _headers(scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])}


def _scheme(scope, headers: dict) -> str:
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure_value = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower()
        if headers.get(name, "").split(",")[0].strip() == secure_value:
            return "https"
    return scope.get("scheme", "http")


def _api_base(scope, headers: dict) -> str | None:
    """Where a composing algorithm's calls go (``services.platform_api_base``), or None if
    Django would refuse the request's host."""
    host = headers.get("host", "")
    if settings.USE_X_FORWARDED_HOST and headers.get("x-forwarded-host"):
        host = headers["x-forwarded-host"].split(",")[-1].strip()
    if not host and scope.get("server"):
        host = "%s:%s" % tuple(scope["server"])
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"]
                                         if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return None
    return settings.EXECUTION_PLATFORM_API or f"{_scheme(scope, headers)}://{host}"


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_error(send, error: ApplicationError):
    body = error_body(error.message, error.error_type, error.stack_trace, **error.extra)
    extra = ([(b"www-authenticate", b'Simple realm="algostore"')]
             if isinstance(error, AuthError) else [])
    return await _send(send, error.status_code, "application/json",
                       json.dumps(body).encode(), extra)


async def _send_json(send, status: int, body: dict):
    return await _send(send, status, "application/json", json.dumps(body).encode())


# What Django's security and clickjacking middleware add to an API response.
_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                     (b"referrer-policy", b"same-origin"),
                     (b"cross-origin-opener-policy", b"same-origin")]


async def _send(send, status: int, content_type: str, body: bytes, extra=()):
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode()), *_SECURITY_HEADERS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
