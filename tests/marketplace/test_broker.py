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
