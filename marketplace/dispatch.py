"""Sending Celery tasks by name, after the current transaction commits (STYLE items 11, 13).

With a broker the task goes to its named queue and a worker runs it; in the embedded default
(no broker) it runs in-process, eagerly, through the same task code.
"""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def run_eagerly(name: str, args: list | tuple = ()):
    """Run a task by name here and now (the embedded default); returns its result."""
    from marketplace.celery import app

    app.loader.import_default_modules()  # autodiscovery is lazy outside a worker
    return app.tasks[name].apply(args=list(args)).get()


def task_send(name: str, *, args: list | tuple = (), queue: str) -> None:
    def send() -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            run_eagerly(name, args)
        else:
            from marketplace.celery import app

            app.send_task(name, args=list(args), queue=queue)

    transaction.on_commit(send)


_pools: dict[str, ThreadPoolExecutor] = {}
_background_lock = threading.Lock()
_running: set = set()
# Builds wait on their own threads (each may take minutes), never ahead of calls.
EMBEDDED_BUILD_THREADS = 2


def run_in_background(name: str, args: list | tuple = (), *, pool: str = "calls") -> None:
    """Embedded (no broker): run a task by name on a thread of this process once the current
    transaction commits, for work nobody waits on (an ``output=void`` call, which answers
    at once, as with a broker, instead of after the whole call). At most
    EXECUTION_EMBEDDED_THREADS calls at once (``pool="builds"``: EMBEDDED_BUILD_THREADS
    builds); more wait their turn."""

    def submit() -> None:
        with _background_lock:
            if pool not in _pools:
                size = (EMBEDDED_BUILD_THREADS if pool == "builds"
                        else settings.EXECUTION_EMBEDDED_THREADS)
                _pools[pool] = ThreadPoolExecutor(size, thread_name_prefix=f"embedded-{pool}")
            future = _pools[pool].submit(_run_then_close, name, list(args))
        _running.add(future)
        future.add_done_callback(_running.discard)

    transaction.on_commit(submit)


def _run_then_close(name: str, args: list) -> None:
    from django.db import connections

    try:
        run_eagerly(name, args)
    except Exception:  # the task closes its own failures; this is what it could not
        logger.exception("Task %s failed in the background", name)
    finally:
        connections.close_all()  # this thread's own connections


def background_drained(timeout: float = 60) -> bool:
    """Whether the background tasks running now have finished within ``timeout``."""
    return not wait(list(_running), timeout=timeout).not_done
