"""kombu's Redis transport, with one Redis client per channel instead of one per operation.

kombu's Redis channel makes a new ``redis.Redis`` for each publish, acknowledgement and
queue operation, and each copies redis-py's table of about 170 reply callbacks: two thirds
of the CPU of ``send_task`` in a profile, and a good part of the worker's acknowledgements.
A client is only a front for its connection pool and safe to share between threads, so
each channel keeps one (a new one if the channel replaces its pool after a reconnect).
Registered for ``redis://`` and ``rediss://`` broker URLs when the Celery app loads.
"""
from contextlib import contextmanager

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class QoS(kombu_redis.QoS):
    """kombu's bookkeeping of unacknowledged messages, its two writes per message (index,
    then body; on acknowledgement, index, then body) sent as a plain pipeline rather than
    inside MULTI/EXEC: one round trip either way, two commands fewer per delivery and per
    acknowledgement. Redis runs them in order; a worker dying between the two leaves an
    index entry without a body (restoring skips it) or a body without an index entry."""

    @contextmanager
    def pipe_or_acquire(self, pipe=None, client=None):
        if pipe:
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as client:
                yield client.pipeline(transaction=False)


class Channel(kombu_redis.Channel):
    QoS = QoS
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


def publish_options() -> dict:
    """Options for ``send_task`` on this broker. On Redis a queue is a list that needs no
    declaring, and publishing to the default exchange pushes onto it: no ``declare`` (kombu
    otherwise copies and binds the queue's entity on every publish, a sixth of a send)."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL or ""
    return {"declare": []} if url.startswith(("redis://", "rediss://")) else {}
