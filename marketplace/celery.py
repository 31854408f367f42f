"""The Celery app. JSON only; every task is routed by its app prefix to a named queue.

Without ``CELERY_BROKER_URL`` tasks run eagerly in-process (the embedded default); with a
broker, workers started by ``celery -A marketplace worker -Q default,builds,execution,billing``
run them.
"""
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.local")

from marketplace import broker  # noqa: E402

broker.register()  # before any connection: redis:// brokers use its transport
app = Celery("algostore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _worker_ready(sender=None, **kwargs) -> None:
    """The worker has loaded its tasks: keep its startup objects out of the garbage
    collector's scans (``marketplace.process_start``), and let its calls lend their slots
    while they wait on calls they make (``execution.capacity``)."""
    from execution.capacity import worker_ready
    from marketplace.process_start import freeze_startup_objects

    freeze_startup_objects()
    worker_ready(sender)
