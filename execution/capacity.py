"""Worker capacity lent by a call while it waits on the calls it makes.

A composing algorithm's call holds its worker thread while its runner has it, and the calls
it makes (its children) need worker threads of their own. With every thread of a worker
held by such parents, no child runs and every parent waits until its timeout: 40 SeeFood
calls, 16 at a time, on one 8-thread execution worker, and 37 ended in a TimeoutError after
20 s. So while a composing call's runner has it, the call lends its slot: the worker may
run one more thread and take one more message from the broker (its prefetch count rises,
as Celery does itself for a task waiting on its ETA), and its database connection goes back
to the pool. Leaves (the calls of algorithms that do not compose) lend nothing: they wait
on nobody.

A worker lends at most ``EXECUTION_MAX_LENT_SLOTS`` at once; past that, a parent keeps its
slot (and a flood of parents can again wait on their children until their timeouts). Only
the execution workers' pool can lend (``execution.pool``, Celery's threads pool on an
executor that can: ``docs/deploy.md``); with another pool a parent keeps its slot.
"""
import logging
from contextlib import contextmanager

from django.conf import settings

logger = logging.getLogger(__name__)
_worker = None  # this process's Celery worker (its thread executor and its consumer), if any


def worker_ready(consumer) -> None:
    """The Celery worker of this process is up (``worker_ready``): keep what lending needs,
    if its pool can lend (``execution.pool``)."""
    global _worker
    from execution.pool import LendingThreadExecutor

    executor = getattr(getattr(consumer, "pool", None), "executor", None)
    if isinstance(executor, LendingThreadExecutor) and hasattr(consumer, "qos"):
        _worker = (executor, consumer)


@contextmanager
def lent_while_waiting():
    """Within the block, the running call lends its worker slot to the calls it makes."""
    worker = _worker
    if worker is None:
        yield
        return
    executor, consumer = worker
    _release_database_connection()
    if not executor.lend(settings.EXECUTION_MAX_LENT_SLOTS):
        logger.warning("A composing call keeps its worker slot: %d are lent already",
                       executor.lent)
        yield
        return
    qos = None
    try:
        # The consumer's current QoS (it makes a new one when it reconnects to the broker);
        # its loop applies the change before its next fetch.
        qos = consumer.qos
        qos.increment_eventually(1)
        yield
    finally:
        if qos is not None:
            qos.decrement_eventually(1)
        executor.reclaim()


def _release_database_connection() -> None:
    """A waiting call needs no database connection: its thread's goes back to the pool (the
    worker's threads would otherwise hold one each while they wait, and the pool ran dry),
    and the thread takes one again when it closes the call."""
    from django.db import connection

    if not connection.in_atomic_block:
        connection.close()
