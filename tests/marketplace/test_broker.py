"""The broker transport: kombu's Redis channel with one client per channel."""
import os
import time

import pytest
from kombu import Connection

from marketplace import broker

pytestmark = pytest.mark.services


def test_redis_brokers_use_the_shared_client_transport_and_it_still_carries_messages():
    from marketplace.celery import app  # registers the transport

    url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/2"
    assert isinstance(app.connection_for_write(url).transport, broker.Transport)
    queue = f"test-broker-{time.time_ns()}"
    with Connection(url) as connection:
        channel = connection.default_channel
        assert isinstance(channel, broker.Channel)
        first = channel._create_client()
        assert channel._create_client() is first  # one client, not one per operation
        producer = connection.Producer()
        for number in range(3):
            producer.publish({"n": number}, routing_key=queue, declare=[
                connection.SimpleQueue(queue).queue])
        with connection.SimpleQueue(queue) as simple:
            received = [simple.get(timeout=5) for _ in range(3)]
            for message in received:
                message.ack()
            assert [message.payload["n"] for message in received] == [0, 1, 2]
        channel._pool = None  # as kombu does after a connection error
        assert channel._create_client() is not first
        assert channel._create_client().connection_pool is channel.pool
        channel.client.delete(queue)


def test_tasks_published_without_declaring_reach_a_redis_queue_nobody_declared(settings):
    from marketplace.celery import app

    settings.CELERY_BROKER_URL = url = (os.environ.get("CELERY_BROKER_URL")
                                        or "redis://127.0.0.1:6379/2")
    assert broker.publish_options() == {"declare": []}
    queue = f"test-undeclared-{time.time_ns()}"
    app.send_task("execution.invoke", args=[1, {"data": "x"}], queue=queue,
                  ignore_result=True, **broker.publish_options())
    with Connection(url) as connection, connection.SimpleQueue(queue) as simple:
        message = simple.get(timeout=5)
        message.ack()
        assert message.headers["task"] == "execution.invoke"
        connection.default_channel.client.delete(queue)
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
    assert broker.publish_options() == {}  # AMQP queues must exist: declared as usual


def _sent_to(queue: str, url: str):
    with Connection(url) as connection, connection.SimpleQueue(queue) as simple:
        message = simple.get(timeout=5)
        message.ack()
        connection.default_channel.client.delete(queue)
        return message


def test_a_task_sent_unread_is_the_message_send_task_sends_and_survives_a_dropped_connection(
        monkeypatch):
    import threading

    from marketplace.celery import app

    url = app.conf.broker_url
    assert url.startswith("redis://")
    app.loader.import_default_modules()
    task = app.tasks["execution.invoke"]  # registered here: it lends its options
    assert task.time_limit and task.serializer == "json"
    queue, args = f"test-unread-{time.time_ns()}", [7, {"data": "x"}, None, "rid"]
    app.send_task("execution.invoke", args=args, queue=queue, ignore_result=True,
                  argsrepr="(7, <input>)", kwargsrepr="{}", **broker.publish_options())
    expected = _sent_to(queue, url)

    def refused(*args, **kwargs):
        raise AssertionError("send_unread_task went the long way, through send_task")

    monkeypatch.setattr(app, "send_task", refused)
    task_id = broker.send_unread_task("execution.invoke", args, queue=queue,
                                      argsrepr="(7, <input>)")
    sent = _sent_to(queue, url)
    assert sent.headers["id"] == sent.headers["root_id"] == task_id
    assert sent.decode() == expected.decode() == [args, {}, {
        "callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ids = ("id", "root_id")
    assert ({k: v for k, v in sent.headers.items() if k not in ids}
            == {k: v for k, v in expected.headers.items() if k not in ids})
    assert sent.headers["timelimit"] == [task.time_limit, None]
    assert sent.headers["ignore_result"] is True and sent.headers["argsrepr"] == "(7, <input>)"
    assert sent.delivery_info["routing_key"] == queue
    assert (sent.content_type, sent.properties["delivery_mode"]) == (
        expected.content_type, expected.properties["delivery_mode"])
    # Producers are kept for the process, not per thread: sends from short-lived threads
    # (a request on a thread of its own) share the one that is free.
    free = broker._producers[os.getpid()]
    kept = free.qsize()
    assert kept >= 1
    for _ in range(3):
        thread = threading.Thread(target=broker.send_unread_task, args=(
            "execution.invoke", args, ), kwargs={"queue": queue, "argsrepr": "-"})
        thread.start()
        thread.join()
    assert free.qsize() == kept  # none made for them
    with Connection(url) as connection:
        assert connection.default_channel.client.llen(queue) == 3
        connection.default_channel.client.delete(queue)
    # The server drops the producer's connection: the next send reconnects (Celery's retry
    # policy, redis-py's own) and the task goes out once.
    producer = free.get()
    client = producer.channel.client
    client.client_kill_filter(_id=client.client_id())
    free.put(producer)
    task_id = broker.send_unread_task("execution.invoke", args, queue=queue, argsrepr="-")
    assert _sent_to(queue, url).headers["id"] == task_id
    with Connection(url) as connection:
        assert connection.default_channel.client.llen(queue) == 0


def test_unacknowledged_messages_are_kept_until_acknowledged_and_restored_if_never():
    url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/2"
    queue = f"test-unacked-{time.time_ns()}"
    with Connection(url) as connection:
        channel = connection.default_channel
        qos, client = channel.qos, channel.client
        assert isinstance(qos, broker.QoS)
        with connection.SimpleQueue(queue) as simple:
            simple.put({"n": 1})
            simple.put({"n": 2})
            first = simple.get(timeout=5)
            tag = first.delivery_tag
            assert client.hexists(qos.unacked_key, tag)  # kept, with its index entry
            assert client.zscore(qos.unacked_index_key, tag) is not None
            first.ack()
            assert not client.hexists(qos.unacked_key, tag)
            assert client.zscore(qos.unacked_index_key, tag) is None
            second = simple.get(timeout=5)
            qos.restore_by_tag(second.delivery_tag)  # what a dead consumer's restore does
            assert not client.hexists(qos.unacked_key, second.delivery_tag)
            again = simple.get(timeout=5)
            assert again.payload == {"n": 2}
            again.ack()
        client.delete(queue)


def test_a_message_acknowledged_with_its_tasks_last_write_needs_no_round_trip_of_its_own():
    import redis

    url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/2"
    other_db = 1 if not url.rstrip("/").endswith("/1") else 3
    results = redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{other_db}")
    queue, result_key = f"test-ack-with-{time.time_ns()}", f"test-result-{time.time_ns()}"
    with Connection(url) as connection:
        channel = connection.default_channel
        qos, client = channel.qos, channel.client
        with connection.SimpleQueue(queue) as simple:
            simple.put({"n": 1})
            message = simple.get(timeout=5)
            tag = message.delivery_tag
            assert client.hexists(qos.unacked_key, tag)
            pipe = results.pipeline(transaction=False)
            pipe.rpush(result_key, "answer")
            done = broker.acknowledge_in(pipe, message)
            assert done is not None
            pipe.execute()
            done()
            # Gone from the broker's database, in the same round trip as the result...
            assert not client.hexists(qos.unacked_key, tag)
            assert client.zscore(qos.unacked_index_key, tag) is None
            # ...which landed in its own database, and the connection is back on it.
            assert results.lrange(result_key, 0, -1) == [b"answer"]
            assert not client.exists(result_key)
            results.set(result_key + ":after", 1)
            assert not client.exists(result_key + ":after")

            def no_round_trip(*args, **kwargs):
                raise AssertionError("the acknowledgement went to Redis again")

            qos._remove_from_indices = no_round_trip
            message.ack()
            assert message.acknowledged and tag not in qos._removed
            del qos._remove_from_indices
            simple.put({"n": 2})  # the next message takes the usual way
            second = simple.get(timeout=5)
            second.ack()
            assert not client.hexists(qos.unacked_key, second.delivery_tag)
        client.delete(queue)
    results.delete(result_key, result_key + ":after")


def test_another_server_is_not_acknowledged_through():
    import redis

    url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/2"
    elsewhere = redis.Redis(host="localhost", port=6379, db=1)  # another host name
    with Connection(url) as connection:
        with connection.SimpleQueue(f"test-ack-elsewhere-{time.time_ns()}") as simple:
            simple.put({"n": 1})
            message = simple.get(timeout=5)
            assert broker.acknowledge_in(elsewhere.pipeline(), message) is None
            message.ack()
            assert not connection.default_channel.client.hexists(
                connection.default_channel.qos.unacked_key, message.delivery_tag)
            simple.queue.delete()
