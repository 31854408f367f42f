"""kombu's Redis transport, with one Redis client per channel instead of one per operation.

kombu's Redis channel makes a new ``redis.Redis`` for each publish, acknowledgement and
queue operation, and each copies redis-py's table of about 170 reply callbacks: two thirds
of the CPU of ``send_task`` in a profile, and a good part of the worker's acknowledgements.
A client is only a front for its connection pool and safe to share between threads, so
each channel keeps one (a new one if the channel replaces its pool after a reconnect).
Registered for ``redis://`` and ``rediss://`` broker URLs when the Celery app loads.
"""
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    for alias in ("redis", "rediss"):
        TRANSPORT_ALIASES[alias] = "marketplace.broker:Transport"
