"""Per-process caches kept exact by an epoch: cheap reads on the hot path, no stale answers.

A cache holds answers computed from database rows. Every change to those rows bumps the
cache's epoch once its transaction commits — in Redis when configured, so every process
sees it at its next read; else in this process, the only one. An answer is used only while
the epoch it was computed under is current, and never longer than its TTL (a backstop for a
change made behind the services' back, e.g. by hand in the database).

With Redis, a process does not ask for the epochs on every read: a bump increments its
epoch and publishes the new value in one script, and each process keeps what it is told
on one subscribed connection (``_Watch``), which it reads without waiting at each use. It
trusts that only while the connection answers its pings (a pong within the last second):
Redis writes a bump's message to every subscriber before it answers the bumper, and the
connection is an ordered stream, so a process that has its pong has every bump made before
it. Otherwise (a broken or silent connection, a fresh process) it reads the epochs from
Redis, one round trip, as it did before (``EPOCH_WATCH`` off: always).
"""
import contextvars
import os
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

# The epochs read once for a unit of work (``epochs_read_once``), by Redis key.
_read_once: contextvars.ContextVar = contextvars.ContextVar("epochs_read_once", default=None)
CHANNEL = "algostore:epochs"
# Increment and publish in one step: subscribers get the bumps in the order they happened.
# A missing epoch (never bumped, flushed, or evicted) starts from the server's clock in
# microseconds, so an epoch never goes back to a value it had: processes keep the highest
# they were told, and entries cached under an old value must never match again.
_BUMP_SCRIPT = ("if redis.call('EXISTS', KEYS[1]) == 0 then "
                "local now = redis.call('TIME') "
                "redis.call('SET', KEYS[1], now[1] .. string.format('%06d', now[2])) end "
                "local epoch = redis.call('INCR', KEYS[1]) "
                "redis.call('PUBLISH', ARGV[1], KEYS[1] .. ' ' .. string.format('%d', epoch)) "
                "return epoch")
# Reading seeds a missing epoch the same way: a read never answers 0 (or any value it had
# before it was lost), so nothing cached under a lost epoch can match again.
_READ_SCRIPT = ("local now = redis.call('TIME') "
                "local seed = now[1] .. string.format('%06d', now[2]) "
                "for _, key in ipairs(KEYS) do redis.call('SET', key, seed, 'NX') end "
                "return redis.call('MGET', unpack(KEYS))")
_read_script = None


def _read_from_redis(keys: list[str]) -> list[int]:
    """The epochs as Redis has them, a missing one seeded (one round trip: redis-py's
    ``Script`` sends its hash, and the script itself only if Redis has forgotten it)."""
    global _read_script
    from redis.commands.core import Script

    from marketplace.redis_client import redis_client

    client = redis_client()
    if _read_script is None:
        _read_script = Script(client, _READ_SCRIPT)
    return [int(value) for value in _read_script(keys=keys, client=client)]


@contextmanager
def epochs_read_once(*caches: "EpochCache"):
    """Within the block, each cache's epoch is the one read on entering it, all at once
    rather than at each use. For a unit of work whose cached reads come at its start (a
    call's admission; a call's run, which reads its algorithm, build and secrets before it
    starts): what it reads is exact as of its start. A bump inside the block is seen at
    once (the bumped cache's epoch is read again)."""
    if not settings.REDIS_URL:
        yield
        return
    keys = [cache.redis_key for cache in caches]
    outer = _read_once.get()
    if outer is not None:  # inside another unit of work: it reads what it lacks, and keeps it
        missing = [key for key in keys if key not in outer]
        if missing:
            outer.update(_current(missing))
        yield
        return
    token = _read_once.set(_current(keys))
    try:
        yield
    finally:
        _read_once.reset(token)


def _current(keys: list[str]) -> dict[str, int]:
    """The epochs now: as this process's watch was told them, or read from Redis."""
    if settings.EPOCH_WATCH:
        known = _watch().read(keys)
        if known is not None:
            return known
    return dict(zip(keys, _read_from_redis(keys)))


class _Watch:
    """The epochs this process has read, kept current by the bumps Redis pushes to it."""

    PING_EVERY, TRUST_FOR = 0.25, 1.0  # seconds

    def __init__(self):
        self.pid, self.lock = os.getpid(), threading.Lock()
        self.pubsub, self.values = None, {}
        self.answered_at = self.pinged_at = 0.0

    def read(self, keys: list[str]) -> dict[str, int] | None:
        """The epochs, or None while this process cannot vouch for them (read them)."""
        import redis

        with self.lock:
            try:
                if self.pubsub is None:
                    self._subscribe()
                self._drain()
                now = time.monotonic()
                if now - self.pinged_at >= self.PING_EVERY:
                    self.pubsub.ping(repr(now))  # its pong says when it was sent
                    self.pinged_at = now
                if now - self.answered_at > self.TRUST_FOR:
                    return None
                missing = [key for key in keys if key not in self.values]
                if missing:  # first use here: read once, then kept current by the pushes
                    for key, value in zip(missing, _read_from_redis(missing)):
                        self.values[key] = max(self.values.get(key, 0), value)
                return {key: self.values[key] for key in keys}
            except (redis.RedisError, OSError, ValueError):
                self._drop()
                return None

    def told(self, key: str, epoch: int) -> None:
        """This process bumped ``key`` to ``epoch`` itself."""
        with self.lock:
            if key in self.values:
                self.values[key] = max(self.values[key], epoch)

    def _subscribe(self) -> None:
        from marketplace.redis_client import redis_client

        self.pubsub = redis_client().pubsub(ignore_subscribe_messages=False)
        self.pubsub.subscribe(CHANNEL)
        confirmed = self.pubsub.get_message(timeout=1.0)  # once per connection
        if not confirmed or confirmed["type"] != "subscribe":
            raise ValueError("The epoch channel's subscription was not confirmed.")
        self.values.clear()  # bumps made before the subscription were not heard
        self.answered_at = self.pinged_at = time.monotonic()

    def _drain(self) -> None:
        while (message := self.pubsub.get_message(timeout=0)) is not None:
            if message["type"] == "pong":
                # Proof of everything published before its ping was sent, not since: a pong
                # left unread through a long idle must not vouch for the idle.
                self.answered_at = max(self.answered_at, float(message["data"] or 0))
            elif message["type"] == "message":
                key, _, epoch = message["data"].decode().partition(" ")
                if key in self.values:
                    self.values[key] = max(self.values[key], int(epoch))

    def _drop(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        self.values.clear()
        if pubsub is not None:
            try:
                pubsub.reset()
            except Exception:  # already broken: nothing to tidy
                pass


_watcher: _Watch | None = None
_watcher_lock = threading.Lock()


def _watch() -> _Watch:
    """This process's watch (a forked child makes its own, and leaves its parent's
    connection alone: closing it would shut the parent's socket too)."""
    global _watcher
    watcher = _watcher
    if watcher is None or watcher.pid != os.getpid():
        with _watcher_lock:
            if _watcher is None or _watcher.pid != os.getpid():
                _watcher = _Watch()
            watcher = _watcher
    return watcher


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
            return _current([self.redis_key])[self.redis_key]
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

            epoch = int(redis_client().eval(_BUMP_SCRIPT, 1, self.redis_key, CHANNEL))
            if settings.EPOCH_WATCH:
                _watch().told(self.redis_key, epoch)

    def bump_on_commit(self, *args, **kwargs) -> None:
        """Bump now, and again once the change is committed: the first stops this and every
        process using what they hold; the second stops them using anything cached from the
        old rows between the two. Usable as a signal receiver."""
        self.bump()
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(self.bump)
