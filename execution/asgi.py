"""The invocation API's hot path under ASGI: a sync call with an API key, served without
Django's request cycle, and without holding a thread while the call runs.

``POST /v1/algo/{owner}/{name}[/{version}]`` does the same work as ``AlgoInvokeApi`` through
the same services (the key check, the options, admission with its hold, the queue by name,
the envelope), then an async wait for the result in the process's inbox
(``execution.results``). A profile of the full stack under load had Django's middleware,
DRF's dispatch and a thread blocked per waiting request at most of the web tier's CPU per
call.

The admission's database work (about a millisecond: the key check from its cache, one
statement, one send to Redis) runs on the event loop's own thread, on a connection the loop
keeps from one call to the next: the hop to a worker thread and back cost a tenth of a
call's CPU across the stack (docs/benchmarks.md, tenth pass). The loop waits for that work,
within limits its connection carries (``ADMIT_ON_LOOP_LIMITS``): a lock (a row's or a
table's) waited for at most 20 ms, a statement at most a second. A statement that gives up
at a limit has written nothing, and the admission is made again in a worker thread, where
it may wait as long as it needs. The loop takes its connection only from those the pool
keeps idle; until it has one (no pool, none idle), and with ``EXECUTION_ADMIT_ON_LOOP``
off, admission runs in a worker thread, as does whatever a failure needs next (testing the
pool's connections). After a failure other than a limit, the loop's connection is closed.
"""
import asyncio
import json
import logging
import re
from contextlib import contextmanager
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections
from django.http.request import split_domain_port, validate_host

from execution import results, services
from execution.apis import raw_parts
from execution.runner.bridge import ended_while_idle
from marketplace.authentication import key_from_header
from marketplace.db_pool import check_pool_if_connection_lost, statement_gave_up
from marketplace.errors import ApplicationError, AuthError, error_body

logger = logging.getLogger(__name__)
INVOKE_PATH = re.compile(r"^/v1/algo/([^/]+)/([^/]+)(?:/([^/]+))?/?$")
_INTERNAL_ERROR = error_body("Internal server error.", "InternalError")


class InvokeFastPath:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        call = _eligible(scope)
        if call is None:  # decided from the headers alone: the body is Django's to read
            return await self.app(scope, receive, send)
        (owner, name, version), headers, query, raw_key, api_base = call
        body, outcome = await _read_body(receive, settings.EXECUTION_REQUEST_MAX_BYTES)
        if outcome == "disconnected":
            return None  # the client left mid-body: nothing is admitted (as in Django)
        if outcome == "too large":
            return await _send_error(send, services.TooLarge.input(), scope, headers)
        inbox = results.inbox()  # where the call's result will come
        # Sent before its admission is written while this process waits on no other call
        # (execution.early_dispatch): at low load, latency; under load, nothing to gain.
        early = settings.EXECUTION_EARLY_DISPATCH and not inbox.waiting
        try:
            invocation = await _admit(
                raw_key=raw_key, owner=owner, name=name, version=version, query=query,
                body=body, content_type=headers.get("content-type", ""), api_base=api_base,
                reply_to=inbox.name, early=early)
        except ApplicationError as error:
            return await _send_error(send, error, scope, headers)
        except Exception:
            logger.exception("Unhandled error admitting a call to %s/%s", owner, name)
            return await _send_json(send, 500, _INTERNAL_ERROR, scope, headers)
        try:
            envelope = await inbox.wait(invocation.request_id,
                                        services.invocation_wait_seconds(invocation))
        except Exception:  # the result channel failed: the call ends here, unbilled
            logger.exception("Lost the result channel of %s", invocation.request_id)
            envelope = None
        try:
            if envelope is None:
                envelope = await _lost_in_thread(invocation)
            if invocation.options.get("output") == "raw":
                status, content_type, payload = raw_parts(envelope)
                return await _send(send, status, content_type, payload, scope, headers)
            return await _send_json(send, 200, envelope, scope, headers)
        except Exception:
            logger.exception("Could not answer the call %s", invocation.request_id)
            return await _send_json(send, 500, _INTERNAL_ERROR, scope, headers)


def _eligible(scope):
    """For a call the fast path may serve: its path's groups, headers, query, key and API
    base, all read from what arrived before the body; else None (Django serves it)."""
    if (scope["type"] != "http" or scope["method"] != "POST"
            or settings.CELERY_TASK_ALWAYS_EAGER or not results.direct()
            or not settings.EXECUTION_FAST_PATH):
        return None
    match = INVOKE_PATH.match(scope["path"])
    if match is None or (match.group(1) == "requests" and match.group(3) is None):
        return None  # /v1/algo/requests/{id} is the results API
    headers = _headers(scope)
    if headers is None:
        return None  # a repeated Host or Authorization: Django decides
    if settings.SECURE_SSL_REDIRECT and _scheme(scope, headers) != "https":
        return None  # Django redirects it
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                           keep_blank_values=True))
    if query.get("output") == "void" or query.get("callback") or "format" in query:
        return None  # async calls, and DRF's format override
    if not _accepts_json(headers.get("accept", "")):
        return None  # DRF's content negotiation answers it (406)
    raw_key = key_from_header(headers.get("authorization", ""))
    api_base = _api_base(scope, headers)
    if not raw_key or api_base is None:
        return None  # no key (401), or a host Django refuses (400)
    return match.groups(), headers, query, raw_key, api_base


def _accepts_json(accept: str) -> bool:
    if not accept.strip():
        return True
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(types & {"application/json", "application/*", "*/*"})


# The loop's own database connection: kept by the loop's thread from one call to the next
# (no checkout per call), with limits on how long any statement of an admission may hold
# the loop: a lock waited for (a row or a table) and a statement's whole run.
ADMIT_ON_LOOP_LIMITS = {"lock_timeout": "20ms", "statement_timeout": "1s"}


async def _admit(**call):
    """``_start`` on the loop's own thread when its connection is at hand (or the pool
    lends one at once), else in a worker thread. A statement that gave up at a limit wrote
    nothing, and the admission is made again in a worker thread, which may wait; what any
    other failure needs next (the pool's test) runs in a worker thread too. Only an
    admission on the loop, bounded in time, is sent early (``execution.early_dispatch``)."""
    failure = None
    if settings.EXECUTION_ADMIT_ON_LOOP:
        with _blocking_allowed():
            try:
                if _loop_connection_ready():
                    return _start(**call)
            except ApplicationError:
                raise
            except Exception as error:
                failure, gave_up = error, statement_gave_up(error)
                db = connections[DEFAULT_DB_ALIAS]
                if gave_up:
                    db.errors_occurred = False  # (Django's flag: the connection is sound)
                else:  # closed, not given back (its limits are this loop's)
                    _close_loop_connection(db)
    if failure is None or gave_up:
        return await _start_in_thread(**{**call, "early": False})
    await _check_pool_in_thread(failure)
    raise failure


def _loop_connection_ready() -> bool:
    """(On the loop's thread, blocking allowed.) Whether its connection is at hand: kept
    from an earlier call, or lent by the pool now from those it keeps idle (then kept, with
    the limits set). Without a pool, or with none idle: no."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.connection is not None:
        if not db.connection.closed and not ended_while_idle(db.connection):
            return True
        _close_loop_connection(db)  # lost under it (a restart): the pool drops it
    if not _pool_lends_at_once(db):
        return False
    db.ensure_connection()
    with db.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(
            f"set_config('{name}', '{value}', false)"
            for name, value in ADMIT_ON_LOOP_LIMITS.items()))
    return True


def _pool_lends_at_once(db) -> bool:
    """Whether the pool has a connection idle and nobody waiting for one (the checkout that
    follows may still find it gone, once: the loop then waits for one as a thread would)."""
    pool = getattr(db, "pool", None)  # PostgreSQL's, when configured
    if pool is None:
        return False
    stats = pool.get_stats()
    return bool(stats.get("pool_available")) and not stats.get("requests_waiting")


def _close_loop_connection(db) -> None:
    """Closed, then let go: the pool drops a closed connection and makes another."""
    try:
        if db.connection is not None and not db.connection.closed:
            db.connection.close()
        db.close()
    except Exception:  # closing what broke: nothing more to do
        logger.debug("Closing the loop's database connection failed", exc_info=True)


def _start(*, raw_key: str, owner: str, name: str, version: str | None, query: dict,
           body: bytes, content_type: str, api_base: str, reply_to: str, early: bool = False):
    """The database half: authenticate, admit (with the hold), queue (``early``: queue,
    then admit)."""
    from catalog.resolution_cache import resolutions
    from marketplace.epoch_cache import epochs_read_once
    from marketplace.services.api_keys import authenticated_keys

    # The key check and the version's resolution read their caches' epochs at once.
    with epochs_read_once(authenticated_keys, resolutions):
        return _admit_and_send(raw_key=raw_key, owner=owner, name=name, version=version,
                               query=query, body=body, content_type=content_type,
                               api_base=api_base, reply_to=reply_to, early=early)


def _start_as_a_request(**call):
    """``_start`` in a worker thread, ended as Django ends a request (the loop keeps its own
    connection instead, and has a failure checked in a thread)."""
    try:
        return _start(**call)
    except Exception as error:
        check_pool_if_connection_lost(error)
        raise
    finally:
        close_old_connections()


@contextmanager
def _blocking_allowed():
    """Django refuses its database calls while an event loop runs on the thread (they would
    hold the loop up); admission on the loop makes them knowingly, and no longer than its
    bounds (module docstring)."""
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)


def _admit_and_send(*, raw_key: str, owner: str, name: str, version: str | None, query: dict,
                    body: bytes, content_type: str, api_base: str, reply_to: str,
                    early: bool):
    from marketplace.services import api_key_authenticate

    key = api_key_authenticate(raw=raw_key)
    call = {"key": key, "user": key.acting_user, "owner": owner, "name": name,
            "version": version, "body": body, "content_type": content_type,
            "options": services.CallOptions.parse(query), "api_base": api_base}
    if early:
        invocation, _payload = services.invocation_start_sent_early(reply_to=reply_to, **call)
        return invocation
    invocation, payload = services.invocation_start(**call)
    services.invocation_send(invocation=invocation, payload=payload, wait=True,
                             reply_to=reply_to)
    return invocation


def _lost(invocation):
    try:
        return services.invocation_lost(invocation=invocation)
    finally:
        close_old_connections()


# Made once: asgiref's wrapper costs a fiftieth of the web tier's time per call to build.
# (The functions are looked up at each call, as a direct call would.)
_start_in_thread = sync_to_async(lambda **call: _start_as_a_request(**call),
                                 thread_sensitive=False)
_lost_in_thread = sync_to_async(lambda invocation: _lost(invocation), thread_sensitive=False)
_check_pool_in_thread = sync_to_async(lambda error: check_pool_if_connection_lost(error),
                                      thread_sensitive=False)


def _headers(scope) -> dict[str, str] | None:
    """The request's headers by lower-case name; None if Host or Authorization repeats."""
    headers = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        if name in headers and name in ("host", "authorization"):
            return None
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _scheme(scope, headers: dict) -> str:
    """``HttpRequest.scheme``: the proxy's header when configured and present."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure_value = proxy
        value = headers.get(header.removeprefix("HTTP_").replace("_", "-").lower())
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return scope.get("scheme", "http")


def _api_base(scope, headers: dict) -> str | None:
    """Where a composing algorithm's calls go (``services.listening_api_base``), or None if
    Django would refuse the request's host."""
    host = headers.get("host", "")
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"]  # as Django reads it: a list is refused
    if not host and scope.get("server"):
        host = "%s:%s" % tuple(scope["server"])
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"]
                                         if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return None
    return services.listening_api_base(scope.get("server"))


async def _read_body(receive, limit: int) -> tuple[bytes, str]:
    """The whole body, and "complete", "too large" or "disconnected"."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", "disconnected"
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", "too large"
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), "complete"


async def _send_error(send, error: ApplicationError, scope, headers):
    extra = ([(b"www-authenticate", b'Simple realm="algostore"')]
             if isinstance(error, AuthError) else [])
    return await _send(send, error.status_code, "application/json",
                       json.dumps(error.body()).encode(), scope, headers, extra)


async def _send_json(send, status: int, body: dict, scope, headers):
    return await _send(send, status, "application/json", json.dumps(body).encode(), scope,
                       headers)


def _security_headers(scope, headers: dict) -> list[tuple[bytes, bytes]]:
    """What Django's security and clickjacking middleware add to an API response."""
    found = []
    if settings.SECURE_HSTS_SECONDS and _scheme(scope, headers) == "https":
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        found.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        found.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        policy = policy if isinstance(policy, str) else ",".join(policy)
        found.append((b"referrer-policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        found.append((b"cross-origin-opener-policy",
                      settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    found.append((b"x-frame-options", getattr(settings, "X_FRAME_OPTIONS", "DENY").encode()))
    return found


async def _send(send, status: int, content_type: str, body: bytes, scope, headers, extra=()):
    response_headers = [(b"content-type", content_type.encode()),
                        (b"content-length", str(len(body)).encode()),
                        *_security_headers(scope, headers), *extra]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
