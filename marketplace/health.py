"""Health checks behind /healthz: each part answers "ok" or says what is wrong."""
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

WORKER_PING_TIMEOUT_SECONDS = 5


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _cache() -> str:
    token = uuid.uuid4().hex
    cache.set(f"healthz:{token}", token, timeout=10)
    return "ok" if cache.get(f"healthz:{token}") == token else "cache did not return the value"


def _channel_layer() -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "healthz"})
    message = async_to_sync(layer.receive)(channel)
    return "ok" if message.get("type") == "healthz" else "channel layer lost the message"


def _worker() -> str:
    from marketplace.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager"
    token = uuid.uuid4().hex
    result = app.send_task("marketplace.ping", args=[token], queue="default")
    answer = result.get(timeout=WORKER_PING_TIMEOUT_SECONDS)
    return "ok" if answer.get("pong") == token else "worker answered wrongly"


def check_all(*, deep: bool = False) -> dict:
    checks = {"database": _database, "cache": _cache, "channel_layer": _channel_layer}
    if deep:
        checks["worker"] = _worker
    report = {}
    for name, check in checks.items():
        try:
            report[name] = check()
        except Exception as error:  # a health check reports, it does not raise
            report[name] = f"error: {type(error).__name__}"
    healthy = all(v in ("ok", "eager") for v in report.values())
    return {"status": "ok" if healthy else "error", **report}
