"""epochs_read_once: the epochs of several caches in one round trip for a unit of work."""
import pytest

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
    one, two = EpochCache("test-one", ttl_seconds=60), EpochCache("test-two", ttl_seconds=60)
    one.bump()
    counting = CountingRedis(redis_client())
    monkeypatch.setattr("marketplace.redis_client._client", counting)
    start_one, start_two = one.epoch(), two.epoch()
    counting.commands.clear()
    with epochs_read_once(one, two):
        assert counting.commands == ["mget"]
        assert one.get_or_set("k", lambda: "computed") == "computed"
        assert one.get_or_set("k", lambda: "again") == "computed"
        assert (one.epoch(), two.epoch()) == (start_one, start_two)
        assert counting.commands == ["mget"]  # no GET per use
        two.bump()  # a change made inside the block is seen inside it
        assert two.epoch() == start_two + 1
        assert one.get_or_set("k", lambda: "again") == "computed"
    one.bump()  # another process's change: seen outside the block
    assert one.get_or_set("k", lambda: "fresh") == "fresh"
    assert one.epoch() == start_one + 1


def test_a_nested_unit_of_work_shares_the_outer_snapshot_and_its_bumps(settings):
    one, two = EpochCache("test-three", ttl_seconds=60), EpochCache("test-four", ttl_seconds=60)
    start_one, start_two = one.epoch(), two.epoch()
    with epochs_read_once(one):
        with epochs_read_once(one, two):
            assert (one.epoch(), two.epoch()) == (start_one, start_two)
            one.bump()
        assert one.epoch() == start_one + 1  # the inner bump is seen after the inner block
        assert two.epoch() == start_two
