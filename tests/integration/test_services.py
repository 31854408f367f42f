"""Pass 2 of `make test`: the scaled-out services are really used (and fail when missing)."""
import os
import uuid

import pytest
import requests
from celery import Celery
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from tests.conftest import require_env, start_worker, stop_worker, wait_for_worker

pytestmark = [pytest.mark.services]


@pytest.mark.django_db
def test_the_suite_runs_on_postgresql():
    require_env("DATABASE_URL")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert int(cursor.fetchone()[0].split(".")[0]) >= 13


def test_cache_and_channel_layer_are_redis():
    require_env("REDIS_URL")
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    token = uuid.uuid4().hex
    cache.set("probe", token)
    import redis

    raw = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert any(b"probe" in k for k in raw.keys("*probe*"))
    assert cache.get("probe") == token


def test_celery_is_not_eager_with_a_broker():
    require_env("CELERY_BROKER_URL")
    assert settings.CELERY_TASK_ALWAYS_EAGER is False


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_answers_on_the_default_queue(celery_worker):
    from marketplace.celery import app

    token = uuid.uuid4().hex
    result = app.send_task("marketplace.ping", args=[token], queue="default")
    answer = result.get(timeout=30)
    assert answer["pong"] == token


@pytest.mark.django_db(transaction=True)
def test_deep_health_check_sees_the_worker(live_server, celery_worker):
    response = requests.get(f"{live_server.url}/healthz?deep=1", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok",
                               "channel_layer": "ok", "worker": "ok"}


@pytest.mark.django_db(transaction=True)
def test_rabbitmq_carries_tasks_to_a_real_worker():
    env = require_env("TEST_AMQP_URL", "CELERY_RESULT_BACKEND")
    app = Celery("probe", broker=env["TEST_AMQP_URL"], backend=env["CELERY_RESULT_BACKEND"])
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    process, log = start_worker({"CELERY_BROKER_URL": env["TEST_AMQP_URL"]}, queues="default")
    try:
        wait_for_worker(app, process)
        token = uuid.uuid4().hex
        answer = app.send_task("marketplace.ping", args=[token], queue="default").get(timeout=30)
        assert answer["pong"] == token
    finally:
        stop_worker(process, log)
        app.close()
