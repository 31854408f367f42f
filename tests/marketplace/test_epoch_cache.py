"""epochs_read_once: the epochs of several caches read once for a unit of work; and each
process's watch, which keeps them current from the bumps Redis pushes to it."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marketplace import epoch_cache
from marketplace.epoch_cache import EpochCache, epochs_read_once
from marketplace.redis_client import redis_client

pytestmark = pytest.mark.services


class CountingRedis:
    """The real client, counting the commands sent through it."""

    def __init__(self, client):
        self.client, self.commands = client, []

    def __getattr__(self, name):
        self.commands.append(name)
        return getattr(self.client, name)


def test_a_unit_of_work_reads_every_epoch_once_and_still_sees_its_own_bumps(
        monkeypatch, settings):
    assert settings.REDIS_URL
    settings.EPOCH_WATCH = False  # every read asks Redis
    one, two = EpochCache("test-one", ttl_seconds=60), EpochCache("test-two", ttl_seconds=60)
    one.bump(), two.bump()  # both epochs exist: from here a bump adds one
    counting = CountingRedis(redis_client())
    monkeypatch.setattr("marketplace.redis_client._client", counting)
    start_one, start_two = one.epoch(), two.epoch()
    counting.commands.clear()
    with epochs_read_once(one, two):
        assert counting.commands == ["evalsha"]
        assert one.get_or_set("k", lambda: "computed") == "computed"
        assert one.get_or_set("k", lambda: "again") == "computed"
        assert (one.epoch(), two.epoch()) == (start_one, start_two)
        assert counting.commands == ["evalsha"]  # no read per use
        two.bump()  # a change made inside the block is seen inside it
        assert two.epoch() == start_two + 1
        assert one.get_or_set("k", lambda: "again") == "computed"
    one.bump()  # another process's change: seen outside the block
    assert one.get_or_set("k", lambda: "fresh") == "fresh"
    assert one.epoch() == start_one + 1


def test_a_nested_unit_of_work_shares_the_outer_snapshot_and_its_bumps(settings):
    one, two = EpochCache("test-three", ttl_seconds=60), EpochCache("test-four", ttl_seconds=60)
    one.bump(), two.bump()
    start_one, start_two = one.epoch(), two.epoch()
    with epochs_read_once(one):
        with epochs_read_once(one, two):
            assert (one.epoch(), two.epoch()) == (start_one, start_two)
            one.bump()
        assert one.epoch() == start_one + 1  # the inner bump is seen after the inner block
        assert two.epoch() == start_two


def bump_in_another_process(cache: EpochCache, redis_url: str) -> None:
    """What ``bump`` sends, sent by another process."""
    subprocess.run([sys.executable, "-c",
                    "import redis, sys; from marketplace.epoch_cache import _BUMP_SCRIPT, CHANNEL;"
                    "redis.Redis.from_url(sys.argv[1]).eval(_BUMP_SCRIPT, 1, sys.argv[2], CHANNEL)",
                    redis_url, cache.redis_key],
                   cwd=Path(__file__).resolve().parents[2], check=True, timeout=60)


def vouched(watch) -> None:
    """Until the watch has a pong for a ping sent within half a second (pings go out as it
    is read), so that what follows does not depend on how busy the machine is."""
    deadline = time.monotonic() + 10
    while time.monotonic() - watch.answered_at > 0.5 and time.monotonic() < deadline:
        watch.read([])
        time.sleep(0.01)
    assert time.monotonic() - watch.answered_at <= 0.5


@pytest.fixture
def watch(settings):
    settings.EPOCH_WATCH = True
    before, epoch_cache._watcher = epoch_cache._watcher, epoch_cache._Watch()
    yield epoch_cache._watcher
    epoch_cache._watcher._drop()
    epoch_cache._watcher = before


def test_another_process_bump_is_seen_at_the_next_read_without_asking_redis(
        watch, monkeypatch, settings):
    one = EpochCache("test-watched", ttl_seconds=60)
    one.bump()
    start = one.epoch()  # subscribes, then reads the epoch once
    vouched(watch)
    assert one.get_or_set("k", lambda: "computed") == "computed"
    counting = CountingRedis(redis_client())
    monkeypatch.setattr("marketplace.redis_client._client", counting)

    assert one.get_or_set("k", lambda: "again") == "computed"
    with epochs_read_once(one):
        assert one.epoch() == start
    assert counting.commands == []  # the watch vouched: no round trip

    bump_in_another_process(one, settings.REDIS_URL)
    vouched(watch)  # however long the other process took to start
    assert one.epoch() == start + 1
    assert one.get_or_set("k", lambda: "fresh") == "fresh"
    assert counting.commands == []
    one.bump()  # this process's own bump is known at once, before its message arrives
    assert one.epoch() == start + 2
    assert counting.commands == ["eval"]


def test_a_broken_watch_reads_from_redis_and_then_subscribes_again(watch, monkeypatch,
                                                                    settings):
    one = EpochCache("test-broken-watch", ttl_seconds=60)
    one.bump()
    start = one.epoch()
    host, port = watch.pubsub.connection._sock.getsockname()[:2]
    assert redis_client().client_kill(f"{host}:{port}")  # its connection is gone
    bump_in_another_process(one, settings.REDIS_URL)  # and nobody tells this process
    counting = CountingRedis(redis_client())
    monkeypatch.setattr("marketplace.redis_client._client", counting)

    assert one.epoch() == start + 1  # read from Redis
    assert counting.commands == ["evalsha"] and watch.pubsub is None
    counting.commands.clear()
    assert one.epoch() == start + 1  # subscribed again: read once more, then pushed
    assert counting.commands == ["pubsub", "evalsha"]
    vouched(watch)
    bump_in_another_process(one, settings.REDIS_URL)
    vouched(watch)
    counting.commands.clear()
    assert one.epoch() == start + 2
    assert counting.commands == []


def test_a_silent_watch_is_not_trusted_until_it_answers_a_ping_again(watch, monkeypatch):
    one = EpochCache("test-silent-watch", ttl_seconds=60)
    one.bump()
    start = one.epoch()
    monkeypatch.setattr(watch.pubsub, "ping", lambda *args, **kwargs: None)  # no pongs
    monkeypatch.setattr(watch, "answered_at", time.monotonic() - watch.TRUST_FOR - 0.1)
    counting = CountingRedis(redis_client())
    monkeypatch.setattr("marketplace.redis_client._client", counting)
    assert one.epoch() == start and one.epoch() == start
    assert counting.commands == ["evalsha", "evalsha"]  # asked every time

    monkeypatch.undo()  # pings go out again; once one is answered, the watch vouches
    monkeypatch.setattr("marketplace.redis_client._client", counting)
    assert epoch_cache._watch() is watch
    watch.pinged_at = 0.0
    one.epoch()
    counting.commands.clear()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and time.monotonic() - watch.answered_at > 0.5:
        one.epoch()
        time.sleep(0.01)
    counting.commands.clear()
    assert one.epoch() == start and counting.commands == []


def test_an_epoch_lost_in_redis_starts_again_above_every_value_it_had(watch, settings):
    """A flushed or evicted epoch: its next bump must still differ from, and exceed, what
    processes hold (they keep the highest they were told), or stale entries would stand."""
    one = EpochCache("test-lost-epoch", ttl_seconds=60)
    one.bump()
    start = one.epoch()
    assert one.get_or_set("k", lambda: "before") == "before"
    redis_client().delete(one.redis_key)  # FLUSHDB, an eviction
    bump_in_another_process(one, settings.REDIS_URL)
    assert one.epoch() > start
    assert one.get_or_set("k", lambda: "after") == "after"
    one.bump()
    assert one.epoch() > start + 1 and one.get_or_set("k", lambda: "again") == "again"


def test_reading_a_lost_epoch_seeds_it_above_every_value_it_had(settings):
    """Nothing cached under a lost epoch may match again: a read of a missing epoch does
    not answer 0, it seeds it from the server's clock."""
    settings.EPOCH_WATCH = False
    one = EpochCache("test-lost-read", ttl_seconds=60)
    one.bump()
    before = one.epoch()
    assert one.get_or_set("k", lambda: "cached") == "cached"
    redis_client().delete(one.redis_key)
    after = one.epoch()
    assert after > before and one.epoch() == after  # seeded once, then stable
    assert one.get_or_set("k", lambda: "fresh") == "fresh"
