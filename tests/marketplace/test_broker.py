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
