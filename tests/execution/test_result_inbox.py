"""The web process's result inbox: one list and one reader per event loop, each result handed
to the request waiting for it, whenever it comes."""
import asyncio
import json
import time

import pytest
import redis

from execution import results

pytestmark = pytest.mark.services


def push(client, inbox, request_id, envelope):
    """What a worker's ``results.publish`` writes for a call whose caller named ``inbox``."""
    client.rpush(inbox.name, f"{request_id} {json.dumps(envelope)}")


def test_each_waiting_call_gets_its_own_result_whenever_it_comes(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        inbox = results.inbox()
        assert results.inbox() is inbox  # one per event loop
        push(client, inbox, "early", {"result": "came first"})
        await asyncio.sleep(0.3)  # read before anyone waits for it
        assert await inbox.wait("early", 5) == {"result": "came first"}
        waits = [asyncio.ensure_future(inbox.wait(f"call-{n}", 10)) for n in range(20)]
        await asyncio.sleep(0.1)
        pipe = client.pipeline(transaction=False)
        for n in reversed(range(20)):  # all at once, in another order: one reply or more
            pipe.rpush(inbox.name, f"call-{n} {json.dumps({'result': n})}")
        pipe.execute()
        answers = await asyncio.wait_for(asyncio.gather(*waits), 10)
        assert answers == [{"result": n} for n in range(20)]
        started = time.monotonic()
        assert await inbox.wait("never", 1) is None  # its timeout, then nothing
        assert 0.9 < time.monotonic() - started < 5
        assert not inbox.waiting and not client.exists(inbox.name)
        return inbox.name

    name = asyncio.run(scenario()).replace(":", "-")
    deadline = time.monotonic() + 5  # the loop closed its reader's connection
    while any(c.get("name") == name for c in client.client_list()):
        assert time.monotonic() < deadline, "the inbox's connection outlived its event loop"
        time.sleep(0.05)


def test_results_pushed_while_the_reader_reconnects_wait_in_the_list_for_it(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        inbox = results.inbox()
        assert await _answered(client, inbox, "before") == {"result": "before"}
        name = inbox.name.replace(":", "-")
        readers = [c for c in client.client_list() if c.get("name") == name]
        assert len(readers) == 1
        client.client_kill_filter(_id=readers[0]["id"])
        push(client, inbox, "meanwhile", {"result": "kept in the list"})
        assert await inbox.wait("meanwhile", 10) == {"result": "kept in the list"}
        assert await _answered(client, inbox, "after") == {"result": "after"}

    asyncio.run(scenario())


async def _answered(client, inbox, request_id):
    waiting = asyncio.ensure_future(inbox.wait(request_id, 10))
    await asyncio.sleep(0.05)
    push(client, inbox, request_id, {"result": request_id})
    return await waiting


def test_an_inbox_whose_reader_stopped_is_replaced(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        first = results.inbox()
        first._reader.cancel()
        await asyncio.sleep(0.1)
        assert first.stopped()
        second = results.inbox()
        assert second is not first and not second.stopped()
        assert await _answered(client, second, "again") == {"result": "again"}
        second._reader.cancel()

    asyncio.run(scenario())
