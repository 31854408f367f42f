"""What a running call has printed so far, for a watcher that connects mid-call
(``execution.consumers``): the lines that came before it, then the rest as they come.

Each streamed batch is appended here before it is announced, and the announcement says
where in the backlog it starts, so a watcher that read the backlog drops what it already
has. Kept in Redis when configured (a list per call, expiring with the call's longest
wait), else in this process (embedded: the only one, whose in-memory channel layer is
process-wide too). A finished call's lines are in its row; its backlog is kept a minute
more (a watcher that read the row as running may come for it just after), then let go.
"""
import threading
import time

from django.conf import settings

from marketplace.redis_client import redis_client, rpush_expiring

ENDED_KEEP_SECONDS = 60
_local: dict[str, list[str]] = {}
_ended: dict[str, float] = {}  # in-process backlogs of finished calls: when they finished
_lock = threading.Lock()


def _key(request_id) -> str:
    return f"algostore:stdout:{request_id}"


def append(request_id, lines: list[str], *, keep_seconds: float) -> int:
    """Add a batch; the index of its first line in the backlog."""
    if settings.REDIS_URL:
        return rpush_expiring(_key(request_id), lines, keep_seconds + 60) - len(lines)
    with _lock:
        _forget_ended()
        backlog = _local.setdefault(str(request_id), [])
        backlog.extend(lines)
        return len(backlog) - len(lines)


def read(request_id) -> list[str]:
    if settings.REDIS_URL:
        return [line.decode("utf-8", "replace")
                for line in redis_client().lrange(_key(request_id), 0, -1)]
    with _lock:
        return list(_local.get(str(request_id), ()))


def ended(request_id) -> None:
    """The call finished: its backlog goes a minute from now."""
    if settings.REDIS_URL:
        redis_client().expire(_key(request_id), ENDED_KEEP_SECONDS)
        return
    with _lock:
        _forget_ended()
        if str(request_id) in _local:
            _ended[str(request_id)] = time.monotonic()


def _forget_ended() -> None:
    now = time.monotonic()
    for request_id in [r for r, at in _ended.items() if now - at > ENDED_KEEP_SECONDS]:
        _local.pop(request_id, None)
        del _ended[request_id]
