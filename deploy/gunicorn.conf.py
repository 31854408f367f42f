"""gunicorn serving Algostore's ASGI app with uvicorn workers (HTTP and WebSockets)."""
import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "uvicorn_worker.UvicornWorker"
# With the embedded defaults (in-memory channel layer, per-process cache) one worker keeps
# WebSocket groups and caches coherent; with Redis configured, scale with the cores.
_default_workers = (multiprocessing.cpu_count() * 2 + 1) if os.environ.get("REDIS_URL") else 1
# (One process still serves concurrent calls: Django runs each request in its own thread.)
workers = int(os.environ.get("WEB_CONCURRENCY", _default_workers))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "330"))  # above the longest sync call (300 s)
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Never log the Authorization header (the format has no request headers) nor the query
# string (signed URLs carry their signature there): method and path only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """The app is loaded: keep its startup objects out of the garbage collector's scans."""
    from marketplace.process_start import freeze_startup_objects

    freeze_startup_objects()


def on_exit(server):
    """Embedded (``make run``: calls run in the web process, no Celery workers), the web was
    the only caller of the local runners: they stop with it, their sandboxes too, rather
    than linger until their idle time runs out."""
    from django.conf import settings

    if settings.CELERY_TASK_ALWAYS_EAGER and settings.EXECUTION_BACKEND == "local":
        from execution.runner.server import stop_all

        stop_all(str(settings.EXECUTION_RUN_DIR))
