"""How a sync call's result gets back to the web request waiting for it.

With Redis configured, the worker pushes the finished envelope onto a short-lived list and
the web tier waits on it with one BLPOP over a connection pool shared by every thread of the
process: one round trip, no subscription per request (Celery's own result backend is kept
per thread, and opens new connections for each request under ASGI). Without Redis the
Celery result backend is used.
"""
import json
import threading
import weakref
from contextlib import contextmanager

from django.conf import settings

from marketplace.redis_client import redis_client

TTL_SECONDS = 900


def direct() -> bool:
    """Whether sync calls get their results over this channel (else Celery's backend)."""
    return (bool(settings.REDIS_URL) and not settings.CELERY_TASK_ALWAYS_EAGER
            and settings.EXECUTION_RESULT_CHANNEL == "redis-list")


def _key(request_id) -> str:
    # By request id, never by row id: a row id can be issued again after a crash of the
    # database loses the row (call writes need not wait for the disk), a request id not.
    return f"algostore:result:{request_id}"


def publish(request_id, envelope: dict) -> None:
    # One round trip, no MULTI/EXEC: nothing else writes the key, and its expiry only
    # bounds how long an answer nobody waits for lingers. Published by the task running the
    # call, it acknowledges the task's broker message too (``acknowledging``).
    pipe = redis_client().pipeline(transaction=False)
    pipe.rpush(_key(request_id), json.dumps(envelope))
    pipe.expire(_key(request_id), TTL_SECONDS)
    message, acknowledged = getattr(_thread, "acknowledging", None), None
    if message is not None:
        from marketplace.broker import acknowledge_in

        acknowledged = acknowledge_in(pipe, message)
    pipe.execute()
    if acknowledged is not None:
        _thread.acknowledging = None
        acknowledged()


_thread = threading.local()


def accepted(message) -> None:
    """The broker message of the task the current pool thread is about to run (called by
    the ``execution.invoke`` task's request as the pool accepts it)."""
    _thread.accepted = message


@contextmanager
def acknowledging(task_id: str):
    """Within the block, the first result published from this thread acknowledges the
    running task's broker message in the same round trip: the call is closed and written by
    then, so the message has nothing left to deliver again."""
    message, _thread.accepted = getattr(_thread, "accepted", None), None
    if message is not None and (message.headers or {}).get("id") != task_id:
        message = None  # not this task's (a task accepted but never run)
    _thread.acknowledging = message
    try:
        yield
    finally:
        _thread.acknowledging = None


def _waiting_options() -> dict:
    """For the clients that wait on results. redis-py gives up reading a reply after its
    default socket timeout (5 s), which ended every wait for a call longer than that; BLPOP's
    own timeout (the call's, plus a margin) bounds a wait, and the socket's timeout only
    backs it up: the longest call's wait and a minute more. Keepalive finds a connection
    whose peer vanished long before that."""
    return {"socket_timeout": settings.EXECUTION_MAX_TIMEOUT + 75, "socket_connect_timeout": 5,
            "socket_keepalive": True}


_waiting_client = None


def wait(request_id, timeout: float) -> dict | None:
    global _waiting_client
    if _waiting_client is None:
        import redis

        _waiting_client = redis.Redis.from_url(settings.REDIS_URL, **_waiting_options())
    item = _waiting_client.blpop([_key(request_id)], timeout=max(timeout, 1))
    return json.loads(item[1]) if item else None


_async_clients: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # one per loop


async def wait_async(request_id, timeout: float) -> dict | None:
    """``wait`` for an event loop: the request holds no thread while its call runs."""
    import asyncio

    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # No cap on the pool: each waiting call holds one connection while its call runs.
        client = _async_clients[loop] = redis.asyncio.Redis.from_url(settings.REDIS_URL,
                                                                      **_waiting_options())
    item = await client.blpop([_key(request_id)], timeout=max(timeout, 1))
    return json.loads(item[1]) if item else None
