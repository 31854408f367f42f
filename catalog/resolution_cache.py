"""Version resolution, remembered per process and kept exact by a catalog epoch.

Resolving ``owner/name/spec`` for a caller (visibility, the version, whether they manage the
algorithm) is four ORM queries, a quarter of the web tier's time per call under load. The
answers change only when the catalog or a membership changes: every such change bumps an
epoch after its transaction commits (in Redis when configured, so every process sees it;
else in this process, the only one). A cached answer is used only while the epoch it was
read under is current, and never longer than ``TTL_SECONDS``. Build-hash calls (owners
testing unpublished builds) are never cached.
"""
import threading
import time

from django.conf import settings
from django.db import transaction

EPOCH_KEY = "algostore:catalog-epoch"
TTL_SECONDS = 30.0
MAX_ENTRIES = 10_000

_entries: dict[tuple, tuple[int, float, object]] = {}
_lock = threading.Lock()
_local_epoch = 0


def current_epoch() -> int:
    if settings.REDIS_URL:
        from marketplace.redis_client import redis_client

        return int(redis_client().get(EPOCH_KEY) or 0)
    return _local_epoch


def get(key: tuple, epoch: int):
    entry = _entries.get(key)
    if entry is None or entry[0] != epoch or entry[1] < time.monotonic():
        return None
    return entry[2]


def put(key: tuple, epoch: int, value) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (epoch, time.monotonic() + TTL_SECONDS, value)


def clear() -> None:
    with _lock:
        _entries.clear()


def bump() -> None:
    """The catalog changed: forget every cached resolution, here and in every process."""
    global _local_epoch
    with _lock:
        _local_epoch += 1
        _entries.clear()
    if settings.REDIS_URL:
        from marketplace.redis_client import redis_client

        redis_client().incr(EPOCH_KEY)


def bump_on_commit(*args, **kwargs) -> None:
    """A signal receiver: bump once the change is committed (never before: another process
    could otherwise cache the old rows under the new epoch)."""
    transaction.on_commit(bump)
