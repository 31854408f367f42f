"""Early dispatch: a sync call's task sent before its admission is written, the worker
waiting for word that it was before it runs anything.

A warm call at concurrency 1 waited on three steps in a row: the admission statement, the
send, then the worker's receipt of the message and Celery's hand-over to a pool thread
(docs/benchmarks.md, thirteenth pass). Sent first, the message travels to the worker, and
the worker prepares the call (its objects, its runner's target), while the web process
writes the admission. The word is a short list per call in Redis: the web process pushes
the call's row id, creation time and hold once the admission is written, or "refused" if
it was not. Nothing of the call runs before the word: a call its admission refuses (no
credits, a cap reached) is never run, and a call never admitted is never closed or billed.
A word nobody takes expires once no caller could still be waiting for the call.

Early calls are sent as ``execution.invoke_early``, their row without its id. The worker
waits for the word at most ``EXECUTION_EARLY_WAIT_SECONDS``. Only an admission
bounded in time is sent early: one on the web process's event loop, whose connection gives
up a lock after 20 ms and a statement after a second (``execution.asgi``). With no word by
then (the web process ended mid-admission, or Redis refused the push), the call is not run
here: a caller still waiting gets its stored envelope at its deadline, and a call admitted
but never run is failed, unbilled, by ``invocation_lost`` or the reaper, as before.

Used only while the web process waits on no other call. Under load, the word costs a push
in the web process and a read in the worker for each call, and buys no latency: both cores
are busy anyway.
"""
import json
import logging

from django.conf import settings

from marketplace.redis_client import blocking_client, rpush_expiring

logger = logging.getLogger(__name__)
REFUSED = "refused"


def _key(request_id) -> str:
    return f"algostore:admission:{request_id}"


def _push(request_id, word: str) -> None:
    # Kept while a caller may still wait (its message may wait in the queue that long),
    # and a minute more.
    rpush_expiring(_key(request_id), [word], settings.EXECUTION_MAX_TIMEOUT + 75)


def admitted(invocation) -> None:
    """(Web.) The call's admission is written: what its worker needs of the row. A push
    that fails raises: the worker, with no word, does not run the call, which its sender
    closes, unbilled (``services.invocation_start_sent_early``)."""
    _push(invocation.request_id, json.dumps({
        "pk": invocation.pk, "created_at": invocation.created_at.isoformat(),
        "usage_hold": getattr(invocation, "usage_hold", None),
        "usage_headroom": getattr(invocation, "usage_headroom", None)}))


def refused(request_id) -> None:
    """(Web.) The call was not admitted: its worker drops it. A push that fails is logged:
    the worker then drops it at the end of its wait."""
    try:
        _push(request_id, REFUSED)
    except Exception:
        logger.warning("Could not tell the worker that call %s was not admitted", request_id,
                       exc_info=True)


def wait(request_id) -> dict | None:
    """(Worker.) What ``admitted`` said of the call, or None if it was refused or no word
    came within ``EXECUTION_EARLY_WAIT_SECONDS``. The word is taken."""
    seconds = settings.EXECUTION_EARLY_WAIT_SECONDS
    # (A Redis that stops answering fails the wait soon after its end, not the longest
    # call's.)
    item = blocking_client(seconds + 5).blpop([_key(request_id)], timeout=max(seconds, 0.01))
    if item is None:
        logger.warning("No word on the admission of call %s within %ss: not run here",
                       request_id, seconds)
        return None
    word = item[1].decode() if isinstance(item[1], bytes) else item[1]
    return None if word == REFUSED else json.loads(word)
