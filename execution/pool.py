"""The execution workers' Celery pool: Celery's threads pool, on an executor whose thread
limit a running call can raise while it waits on the calls it makes (``execution.capacity``).

    CELERY_CUSTOM_WORKER_POOL=execution.pool:TaskPool celery -A marketplace worker -P custom ...

The standard library's ``ThreadPoolExecutor`` cannot do this: it starts threads only when
work is submitted, and it counts a thread idle after each piece of work whether or not the
thread has taken the next one. With every thread held by a parent waiting on its children,
the children's work stayed queued behind them (found with 128 SeeFood calls at once).
Here a thread is idle only while it waits for work, and work that waits finds a thread
whenever the limit allows one.
"""
import itertools
import logging
import queue
import threading
from concurrent.futures import Executor, Future

from celery.concurrency import thread

logger = logging.getLogger(__name__)


class LendingThreadExecutor(Executor):
    """Runs submitted work on at most ``limit`` threads plus those lent: ``lend`` raises the
    limit by one (starting a thread at once if work waits), ``reclaim`` lowers it again."""

    _names = itertools.count()

    def __init__(self, limit: int):
        self._base, self._limit, self._work = limit, limit, queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = self._waiting = 0  # threads waiting for work; work waiting for a thread
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._waiting += 1
            self._work.put((future, fn, args, kwargs))
            self._start_threads()
        return future

    def lend(self, most: int) -> bool:
        """One more thread, unless ``most`` are lent already (then False)."""
        with self._lock:
            if self._limit - self._base >= most:
                return False
            self._limit += 1
            self._start_threads()
            return True

    @property
    def lent(self) -> int:
        return self._limit - self._base

    def reclaim(self) -> None:
        with self._lock:
            self._limit -= 1  # a thread above the limit stops once its work is done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        self._waiting -= 1
                        item[0].cancel()
            threads = list(self._threads)
            for _ in threads:
                self._work.put(None)
        if wait:
            for worker in threads:
                worker.join()

    def _start_threads(self) -> None:  # with the lock held
        while self._waiting > self._idle and len(self._threads) < self._limit:
            worker = threading.Thread(target=self._run, daemon=True,
                                      name=f"execution-{next(self._names)}")
            self._threads.add(worker)
            self._idle += 1  # it takes work as soon as it runs
            try:
                worker.start()
            except RuntimeError:  # no thread to be had (a process limit): the running take it
                self._threads.discard(worker)
                self._idle -= 1
                logger.warning("Could not start a worker thread; %d run", len(self._threads))
                return

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            item = self._work.get()
            with self._lock:
                self._idle -= 1
                if item is None:
                    self._threads.discard(me)
                    return
                self._waiting -= 1
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:  # the future carries it, as the stdlib's does
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del item, future, fn, args, kwargs
            with self._lock:
                if len(self._threads) > self._limit:
                    self._threads.discard(me)  # lent capacity reclaimed: one thread fewer
                    return
                self._idle += 1


class TaskPool(thread.TaskPool):
    """Celery's threads pool with a ``LendingThreadExecutor``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.executor.shutdown(wait=False)  # the standard one: never started a thread
        self.executor = LendingThreadExecutor(self.limit)
