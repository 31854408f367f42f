"""Worker capacity lent by a call while it waits on the calls it makes.

A composing algorithm's call holds its worker thread while its runner has it, and the calls
it makes (its children) need worker threads of their own. With every thread of a worker
held by such parents, no child runs and every parent waits until its timeout: 40 SeeFood
calls, 16 at a time, on one 8-thread execution worker, and 37 ended in a TimeoutError after
20 s. So while a composing call's runner has it, the call lends its slot: the worker may
run one more thread and take one more message from the broker (its prefetch count rises,
as Celery does itself for a task waiting on its ETA). Leaves (the calls of algorithms that
do not compose) lend nothing: they wait on nobody.

A worker lends at most ``EXECUTION_MAX_LENT_SLOTS`` at once; past that, a parent keeps its
slot (and a flood of parents can again wait on their children until their timeouts). Only
Celery's threads pool, the one execution workers run (``docs/deploy.md``), can lend: a
prefork pool's calls run in processes that cannot grow their parent's pool.
"""
import logging
import threading
from contextlib import contextmanager

from django.conf import settings

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_worker = None  # this process's Celery worker (its thread executor and its QoS), if any
_lent = 0


def worker_ready(consumer) -> None:
    """The Celery worker of this process is up (``worker_ready``): keep what lending needs,
    if its pool is Celery's threads pool."""
    global _worker
    from celery.concurrency.thread import TaskPool

    pool, qos = getattr(consumer, "pool", None), getattr(consumer, "qos", None)
    if isinstance(pool, TaskPool) and qos is not None:
        _worker = (pool.executor, qos)


def lent_slots() -> int:
    return _lent


@contextmanager
def lent_while_waiting():
    """Within the block, the running call lends its worker slot to the calls it makes."""
    global _lent
    worker = _worker
    if worker is None:
        yield
        return
    executor, qos = worker
    with _lock:
        lend = _lent < settings.EXECUTION_MAX_LENT_SLOTS
        if lend:
            _lent += 1
            # ThreadPoolExecutor starts a thread for a submitted task while it has fewer than
            # this many and none idle; it never stops one (an idle thread costs nothing).
            executor._max_workers += 1
    if not lend:
        logger.warning("A composing call keeps its worker slot: %d are lent already", _lent)
        yield
        return
    qos.increment_eventually(1)  # the consumer's loop applies it before its next fetch
    try:
        yield
    finally:
        with _lock:
            _lent -= 1
            executor._max_workers -= 1
        qos.decrement_eventually(1)
