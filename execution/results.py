"""How a sync call's result gets back to the web request waiting for it.

With Redis configured, the worker pushes the finished envelope onto a short-lived list. A
request served by the ASGI fast path is answered through its web process's inbox: one list
per event loop, read by one loop task (BLMPOP: every result waiting, in one reply) that
hands each envelope to the request waiting for it, so a waiting call costs no connection
and no command of its own. Django's views wait on the call's own list with one BLPOP over
a connection pool shared by every thread of the process. Without Redis the Celery result
backend is used.
"""
import asyncio
import json
import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from contextlib import contextmanager, suppress

from django.conf import settings

from marketplace.redis_client import blocking_client, redis_client

TTL_SECONDS = 900
logger = logging.getLogger(__name__)


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
    # call, it goes to the inbox its caller named, and acknowledges the task's broker
    # message too (``answering``).
    inbox = getattr(_thread, "inbox", None)
    if inbox is not None and getattr(_thread, "request_id", None) == str(request_id):
        key, value = inbox, f"{request_id} {json.dumps(envelope)}"
    else:
        key, value = _key(request_id), json.dumps(envelope)
    pipe = redis_client().pipeline(transaction=False)
    pipe.rpush(key, value)
    pipe.expire(key, TTL_SECONDS)
    message, acknowledged = getattr(_thread, "acknowledging", None), None
    if message is not None:
        from marketplace.broker import acknowledge_in

        acknowledged = acknowledge_in(pipe, message)
    replies = pipe.execute(raise_on_error=False)
    for reply in replies[:2]:  # the result itself: its failure is the caller's
        if isinstance(reply, Exception):
            raise reply
    if getattr(_thread, "request_id", None) == str(request_id):
        _thread.answered = True
    if acknowledged is not None:
        _thread.acknowledging = None
        failed = [reply for reply in replies[2:] if isinstance(reply, Exception)]
        if failed:  # e.g. a Redis user that may not SELECT: the usual acknowledgement then
            logger.warning("A call's broker message could not be acknowledged with its "
                           "result: %s", failed[0])
        else:
            acknowledged()


_thread = threading.local()


def accepted(message) -> None:
    """The broker message of the task the current pool thread is about to run (called by
    the call tasks' request, ``execution.tasks.InvokeRequest``, as the pool accepts it)."""
    _thread.accepted = message


@contextmanager
def answering(*, task_id: str, request_id: str | None, inbox: str | None):
    """Within the block (the task running the call ``request_id``), its result goes to
    ``inbox`` if its caller named one, and the first result published from this thread
    acknowledges the running task's broker message in the same round trip: the call has
    run by then, and its answer is given, so the message has nothing left to deliver again
    (a close still to be written after the answer is the worker's to finish, else the
    reaper's: ``services._answer_first``)."""
    message, _thread.accepted = getattr(_thread, "accepted", None), None
    if message is not None and (message.headers or {}).get("id") != task_id:
        message = None  # not this task's (a task accepted but never run)
    _thread.acknowledging, _thread.request_id, _thread.inbox = message, request_id, inbox
    _thread.answered = False
    try:
        yield
    finally:
        _thread.acknowledging = _thread.request_id = _thread.inbox = None
        _thread.answered = False


def answered() -> bool:
    """(Within ``answering``.) Whether the call's result has been published: its caller has
    its answer."""
    return bool(getattr(_thread, "answered", False))


def wait(request_id, timeout: float) -> dict | None:
    # The socket backs up the longest call's wait, and a minute more.
    client = blocking_client(settings.EXECUTION_MAX_TIMEOUT + 75)
    item = client.blpop([_key(request_id)], timeout=max(timeout, 1))
    return json.loads(item[1]) if item else None


_inboxes: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # one per event loop


def inbox() -> "Inbox":
    """The running event loop's inbox (made, and its reader started, on first use; made
    again should its reader ever have stopped)."""
    loop = asyncio.get_running_loop()
    found = _inboxes.get(loop)
    if found is None or found.stopped():
        found = _inboxes[loop] = Inbox(loop)
    return found


class Inbox:
    """Results for the calls an event loop is waiting on: one list, one reader.

    A reply lost with its connection after Redis took it from the list (a batch, here) is
    lost to its callers, as the BLPOP each caller sent used to lose its own: they get the
    call's stored envelope at their deadline (``invocation_lost``)."""

    BATCH = 256
    WAIT_SECONDS = 30  # one BLMPOP's longest wait; the reader's socket gives up 10 s later
    EARLY_SECONDS = 60  # how long a result nobody waits for yet is kept

    def __init__(self, loop):
        self.name = f"algostore:inbox:{uuid.uuid4().hex}"
        self.waiting: dict[str, asyncio.Future] = {}
        # Results that came before their caller waited (oldest first), kept for a minute.
        self.early: "OrderedDict[str, tuple[float, dict]]" = OrderedDict()
        self._loop, self._blmpop = loop, True
        self._reader = loop.create_task(self._read())

    def stopped(self) -> bool:
        return self._reader.done()

    async def wait(self, request_id, timeout: float) -> dict | None:
        """The call's envelope, or None if none came within ``timeout`` seconds."""
        request_id = str(request_id)
        found = self.early.pop(request_id, None)
        if found is not None:
            return found[1]
        future = self.waiting[request_id] = self._loop.create_future()
        try:
            return await asyncio.wait_for(future, max(timeout, 1))
        except asyncio.TimeoutError:
            return None
        finally:
            self.waiting.pop(request_id, None)

    async def _read(self) -> None:
        import redis.asyncio

        client = None
        while True:
            try:
                if client is None:  # named, to be found among Redis's clients
                    client = redis.asyncio.Redis.from_url(
                        settings.REDIS_URL, client_name=self.name.replace(":", "-"),
                        decode_responses=False, socket_timeout=self.WAIT_SECONDS + 10,
                        socket_connect_timeout=5, socket_keepalive=True)
                for value in await self._next(client):
                    self._deliver(value)
            except asyncio.CancelledError:  # the loop is closing
                await _close(client)
                raise
            except Exception:  # the connection: results wait in the list meanwhile
                logger.exception("The result inbox %s lost its connection", self.name)
                await _close(client)
                client = None
                await asyncio.sleep(0.5)

    async def _next(self, client) -> list[bytes]:
        """What is in the list now, waiting up to WAIT_SECONDS for something to be."""
        import redis

        if self._blmpop:
            try:
                found = await client.execute_command("BLMPOP", self.WAIT_SECONDS, 1,
                                                     self.name, "LEFT", "COUNT", self.BATCH)
                return found[1] if found else []
            except redis.ResponseError as error:  # before Redis 7: one result per reply
                if "unknown command" not in str(error).lower():
                    raise
                self._blmpop = False
        found = await client.blpop([self.name], timeout=self.WAIT_SECONDS)
        return [found[1]] if found else []

    def _deliver(self, value: bytes) -> None:
        try:
            request_id, _, body = value.partition(b" ")
            request_id, envelope = request_id.decode(), json.loads(body)
        except ValueError:  # not a result: the rest of the batch still goes out
            logger.error("The result inbox %s got something that is no result", self.name)
            return
        future = self.waiting.get(request_id)
        if future is not None and not future.done():
            future.set_result(envelope)
            return
        now = time.monotonic()
        while self.early and now - next(iter(self.early.values()))[0] > self.EARLY_SECONDS:
            self.early.popitem(last=False)  # its caller stopped waiting before it came
        self.early[request_id] = (now, envelope)


async def _close(client) -> None:
    """Close a reader's client; a close that fails leaves nothing to undo."""
    if client is not None:
        with suppress(Exception):
            await client.aclose()
