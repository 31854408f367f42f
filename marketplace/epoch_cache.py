"""Per-process caches kept exact by an epoch: cheap reads on the hot path, no stale answers.

A cache holds answers computed from database rows. Every change to those rows bumps the
cache's epoch once its transaction commits — in Redis when configured, so every process
sees it at its next read; else in this process, the only one. An answer is used only while
the epoch it was computed under is current, and never longer than its TTL (a backstop for a
change made behind the services' back, e.g. by hand in the database).
"""
import contextvars
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

# The epochs read once for a unit of work (``epochs_read_once``), by Redis key.
_read_once: contextvars.ContextVar = contextvars.ContextVar("epochs_read_once", default=None)


@contextmanager
def epochs_read_once(*caches: "EpochCache"):
    """Within the block, each cache's epoch is the one read on entering it, all in one
    round trip, rather than a round trip at each use. For a unit of work whose cached reads
    come at its start (a call's admission; a call's run, which reads its algorithm, build
    and secrets before it starts): what it reads is exact as of its start. A bump inside
    the block is seen at once (the bumped cache's epoch is read again)."""
    if not settings.REDIS_URL:
        yield
        return
    from marketplace.redis_client import redis_client

    keys = [cache.redis_key for cache in caches]
    outer = _read_once.get()
    if outer is not None:  # inside another unit of work: it reads what it lacks, and keeps it
        missing = [key for key in keys if key not in outer]
        if missing:
            outer.update({key: int(value or 0) for key, value in zip(
                missing, redis_client().mget(missing))})
        yield
        return
    token = _read_once.set({key: int(value or 0) for key, value in zip(
        keys, redis_client().mget(keys))})
    try:
        yield
    finally:
        _read_once.reset(token)


class EpochCache:
    def __init__(self, name: str, *, ttl_seconds: float, max_entries: int = 10_000):
        self.redis_key = f"algostore:epoch:{name}"
        self.ttl, self.max_entries = ttl_seconds, max_entries
        self._entries: dict = {}
        self._lock = threading.Lock()
        self._local_epoch = 0

    def epoch(self) -> int:
        read = _read_once.get()
        if read is not None and self.redis_key in read:
            return read[self.redis_key]
        if settings.REDIS_URL:
            from marketplace.redis_client import redis_client

            return int(redis_client().get(self.redis_key) or 0)
        return self._local_epoch

    def get(self, key, epoch: int):
        entry = self._entries.get(key)
        if entry is None or entry[0] != epoch or entry[1] < time.monotonic():
            return None
        return entry[2]

    def get_or_set(self, key, compute):
        """The answer for ``key`` under the current epoch, computed (and kept) if missing."""
        epoch = self.epoch()
        value = self.get(key, epoch)
        if value is None:
            value = compute()
            self.put(key, epoch, value)
        return value

    def put(self, key, epoch: int, value) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (epoch, time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def bump(self) -> None:
        """The rows changed: forget every answer, here and in every process."""
        read = _read_once.get()
        if read is not None:
            read.pop(self.redis_key, None)
        with self._lock:
            self._local_epoch += 1
            self._entries.clear()
        if settings.REDIS_URL:
            from marketplace.redis_client import redis_client

            redis_client().incr(self.redis_key)

    def bump_on_commit(self, *args, **kwargs) -> None:
        """Bump now, and again once the change is committed: the first stops this and every
        process using what they hold; the second stops them using anything cached from the
        old rows between the two. Usable as a signal receiver."""
        self.bump()
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(self.bump)
