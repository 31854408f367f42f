"""What a running call has printed so far, for a watcher that connects mid-call
(``execution.consumers``): the lines that came before it, then the rest as they come.

Each streamed batch is appended here before it is announced, and the announcement says
where in the backlog it starts, so a watcher that read the backlog drops what it already
has. Kept in Redis when configured (a list per call, expiring with the call's longest
wait), else in this process (embedded: the only one, whose in-memory channel layer is
process-wide too). A finished call's lines are in its row; its backlog is let go.
"""
import threading

from django.conf import settings

_local: dict[str, list[str]] = {}
_lock = threading.Lock()


def _key(request_id) -> str:
    return f"algostore:stdout:{request_id}"


def append(request_id, lines: list[str], *, keep_seconds: float) -> int:
    """Add a batch; the index of its first line in the backlog."""
    if settings.REDIS_URL:
        from marketplace.redis_client import redis_client

        pipe = redis_client().pipeline(transaction=False)
        pipe.rpush(_key(request_id), *lines)
        pipe.expire(_key(request_id), int(keep_seconds) + 60)
        return pipe.execute()[0] - len(lines)
    with _lock:
        backlog = _local.setdefault(str(request_id), [])
        backlog.extend(lines)
        return len(backlog) - len(lines)


def read(request_id) -> list[str]:
    if settings.REDIS_URL:
        from marketplace.redis_client import redis_client

        return [line.decode("utf-8", "replace")
                for line in redis_client().lrange(_key(request_id), 0, -1)]
    with _lock:
        return list(_local.get(str(request_id), ()))


def discard(request_id) -> None:
    if settings.REDIS_URL:
        from marketplace.redis_client import redis_client

        redis_client().delete(_key(request_id))
        return
    with _lock:
        _local.pop(str(request_id), None)
