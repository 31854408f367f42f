"""kombu's Redis transport, with one Redis client per channel instead of one per operation.

kombu's Redis channel makes a new ``redis.Redis`` for each publish, acknowledgement and
queue operation, and each copies redis-py's table of about 170 reply callbacks: two thirds
of the CPU of ``send_task`` in a profile, and a good part of the worker's acknowledgements.
A client is only a front for its connection pool and safe to share between threads, so
each channel keeps one (a new one if the channel replaces its pool after a reconnect).
Registered for ``redis://`` and ``rediss://`` broker URLs when the Celery app loads.
"""
import os
from contextlib import contextmanager
from queue import Empty, SimpleQueue

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual


class QoS(kombu_redis.QoS):
    """kombu's bookkeeping of unacknowledged messages, its two writes per message (index,
    then body; on acknowledgement, index, then body) sent as a plain pipeline rather than
    inside MULTI/EXEC: one round trip either way, two commands fewer per delivery and per
    acknowledgement. Redis runs them in order; a worker dying between the two leaves an
    index entry without a body (restoring skips it) or a body without an index entry.

    A message whose entries already went with its task's own last write
    (``acknowledge_in``) is acknowledged without a round trip of its own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._removed: set = set()  # delivery tags whose entries are gone from Redis

    def removed(self, delivery_tag) -> None:
        """The message's entries are gone from Redis (``acknowledge_in``)."""
        self._removed.add(delivery_tag)

    def ack(self, delivery_tag):
        if not self._forget_removed(delivery_tag):
            super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        # A removed message's task finished: there is nothing left to restore.
        if not self._forget_removed(delivery_tag):
            super().reject(delivery_tag, requeue=requeue)

    def _forget_removed(self, delivery_tag) -> bool:
        """For a message whose entries are gone already: kombu's own bookkeeping only."""
        if delivery_tag not in self._removed:
            return False
        self._removed.discard(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)
        return True

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


def acknowledge_in(pipe, message):
    """Queue the removal of ``message``'s unacknowledged entries on ``pipe``, a pipeline to
    the broker's Redis server (to the broker's database, or to another, then selected for
    those two commands and selected back), so that its task's last write acknowledges it
    too: one round trip fewer per task. Returns what to call once ``pipe`` has run (the
    consumer's acknowledgement then leaves Redis alone), or None where it cannot (another
    server, another transport, a key prefix). Only for a task whose work is done and
    written: a worker dying after this does not deliver the message again."""
    channel = getattr(message, "channel", None)
    qos = getattr(channel, "qos", None)
    if not isinstance(qos, QoS) or getattr(channel, "global_keyprefix", ""):
        return None
    broker, ours = channel.pool.connection_kwargs, pipe.connection_pool.connection_kwargs
    if (any(broker.get(name) != ours.get(name)
            for name in ("host", "port", "path", "username", "password"))
            or channel.pool.connection_class is not pipe.connection_pool.connection_class):
        return None
    broker_db, our_db = int(broker.get("db") or 0), int(ours.get("db") or 0)
    tag = message.delivery_tag
    if broker_db != our_db:
        pipe.execute_command("SELECT", broker_db)
    pipe.zrem(qos.unacked_index_key, tag).hdel(qos.unacked_key, tag)
    if broker_db != our_db:
        pipe.execute_command("SELECT", our_db)
    return lambda: qos.removed(tag)


def register() -> None:
    for alias in ("redis", "rediss"):
        TRANSPORT_ALIASES[alias] = "marketplace.broker:Transport"


# What a registered task may lend to its messages that this sender carries as send_task
# does: in the message itself, and as publishing options.
_MESSAGE_OPTIONS = ("time_limit", "soft_time_limit")
_PUBLISH_OPTIONS = ("serializer", "compression", "delivery_mode", "priority")


def send_unread_task(name: str, args: list, *, queue: str, argsrepr: str) -> str:
    """Celery's ``send_task`` for a task nobody reads a result of: the same message
    (Celery's ``create_task_message``) published the same way (Celery's
    ``send_task_message``: its signals, its retry policy, which reconnects a dropped
    connection), on a producer the process keeps, without what ``send_task`` does around
    them for every send: routing, acquiring a producer from the pool, making a result
    object, reading Celery's configuration (0.36 -> 0.21 ms of CPU a send,
    docs/benchmarks.md). The call path's one send per call. Returns the task's id."""
    from kombu.utils.uuid import uuid

    from marketplace.celery import app

    in_message, publishing, other, sent_event = _plan(app, name)
    if other:  # options this sender does not carry (an expiry, a queue...): Celery's way
        return app.send_task(name, args=args, queue=queue, ignore_result=True,
                             argsrepr=argsrepr, kwargsrepr="{}", result_cls=SentTask,
                             **publish_options()).id
    task_id, root_id, parent_id = uuid(), None, None
    parent = app.current_worker_task
    if parent:  # a task sent by a task carries its tree's ids
        root_id, parent_id = parent.request.root_id or parent.request.id, parent.request.id
    amqp = app.amqp
    message = amqp.create_task_message(
        task_id, name, args, None, root_id=root_id, parent_id=parent_id, ignore_result=True,
        argsrepr=argsrepr, kwargsrepr="{}", create_sent_event=sent_event, **in_message)
    with _producer(app) as producer, producer.connection._reraise_as_library_errors():
        amqp.send_task_message(producer, name, message, queue=queue, **publishing,
                               **publish_options())
    return task_id


_plans: dict = {}


def _plan(app, name: str) -> tuple[dict, dict, bool, bool]:
    """What a send of ``name`` carries, worked out once (Celery's configuration is slow to
    read: 50 µs for one setting): as send_task, a task registered in this process lends its
    options, in the message and to the publish; whether it lends others this sender does
    not carry; whether a task-sent event goes out. Worked out again once the task is
    registered."""
    task = app._tasks.get(name)
    key = (id(app), name, task is not None)
    plan = _plans.get(key)
    if plan is None:
        lent = ({option: value for option, value in task._get_exec_options().items()
                 if value is not None} if task is not None else {})
        plan = _plans[key] = (
            {option: lent.pop(option) for option in _MESSAGE_OPTIONS if option in lent},
            {option: lent.pop(option) for option in _PUBLISH_OPTIONS if option in lent},
            bool(lent), bool(app.conf.task_send_sent_event))
    return plan


class SentTask:
    """What ``send_task`` returns when no result will be read: the id alone. (Celery's
    AsyncResult builds a result-backend client for each new thread, and under ASGI a
    request may run on a thread of its own.)"""

    def __init__(self, task_id, *args, **kwargs):
        self.id = task_id


_producers: dict = {}  # by process id: the producers no send is using


@contextmanager
def _producer(app):
    """A producer no other send is using, kept for the next (a request on a thread of its
    own must not cost a connection). A producer whose send failed is let go. A forked
    child keeps its own: its parent's sockets are not its to use."""
    free = _producers.get(os.getpid())
    if free is None:
        free = _producers.setdefault(os.getpid(), SimpleQueue())
    try:
        producer = free.get_nowait()
    except Empty:
        producer = app.amqp.Producer(app.connection_for_write(), auto_declare=False)
    try:
        yield producer
    except BaseException:
        try:
            producer.connection.close()
        except Exception:  # already broken: nothing to tidy
            pass
        raise
    free.put(producer)


def publish_options() -> dict:
    """Options for ``send_task`` on this broker. On Redis a queue is a list that needs no
    declaring, and publishing to the default exchange pushes onto it: no ``declare`` (kombu
    otherwise copies and binds the queue's entity on every publish, a sixth of a send)."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL or ""
    return {"declare": []} if url.startswith(("redis://", "rediss://")) else {}
