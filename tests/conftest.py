"""Shared fixtures: users, keys, API clients, and real services for pass 2 of `make test`."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import requests
from django.core.cache import cache
from rest_framework.test import APIClient

from marketplace import services
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clear_cache():
    from billing.services import usage
    from catalog.resolution_cache import resolutions
    from catalog.services.secrets import environments
    from marketplace.services.api_keys import authenticated_keys
    from marketplace.services import api_keys

    cache.clear()
    api_keys._last_marked.clear()  # per-process "recently used" marks: fresh for each test
    resolutions.clear()  # and resolutions: a flushed database reuses names
    authenticated_keys.clear()
    environments.clear()
    usage._account_ids.clear()  # and account ids: a rolled-back SQLite test reuses ids
    yield
    cache.clear()
    resolutions.clear()
    authenticated_keys.clear()


@pytest.fixture(autouse=True)
def _background_calls_finished_before_flush(request):
    """Embedded, an output=void call runs on a thread of the process (the tests' own): it
    finishes before its test's database is flushed."""
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction"):
        request.getfixturevalue("transactional_db")  # so this teardown runs before the flush
    yield
    from marketplace.dispatch import background_drained

    assert background_drained(timeout=120), "a background call did not finish"


@pytest.fixture(autouse=True)
def _billing_settled_before_flush(request, settings):
    """With a real broker, a call's settlement is a task that may still be running when its
    test ends; the flush after a transactional test must not race it (PostgreSQL would call
    that a deadlock). So settle what is left here, and let a worker's batch finish first."""
    marker = request.node.get_closest_marker("django_db")
    if settings.CELERY_TASK_ALWAYS_EAGER or not (marker and marker.kwargs.get("transaction")):
        yield
        return
    request.getfixturevalue("transactional_db")  # so this teardown runs before the flush
    global _deadlock_timeout_raised
    if _deadlock_timeout_raised:  # by the last test's teardown, for its flush: reset now
        _deadlock_timeout("RESET deadlock_timeout")
        _deadlock_timeout_raised = False
    yield
    from billing.models import UsageRecord
    from billing.services import usage_settle_pending

    usage_settle_pending()
    wait_for(lambda: not UsageRecord.objects.filter(status="pending").exists(), timeout=30)
    # A run the worker scheduled may still start, with nothing left to settle, as the flush
    # begins: the two lock their tables in different orders. The flush waits longest before
    # looking for a deadlock, so PostgreSQL cancels the run's statement, not the flush. The
    # flush belongs to a fixture set up before this one, so it runs after every teardown of
    # this one (a finalizer here would reset the setting before it): the next transactional
    # test's setup resets it.
    _deadlock_timeout("SET deadlock_timeout = '30s'")
    _deadlock_timeout_raised = True


_deadlock_timeout_raised = False


def _deadlock_timeout(statement: str) -> None:
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    except DatabaseError:  # a role that may not set it: the server's own timeout stays
        pass


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def make_key(db):
    """Make a key and return its raw secret: ``make_key(user, scopes=..., organization=...)``."""

    def _make(owner, **kwargs):
        kwargs.setdefault("name", "test key")
        return services.api_key_create(created_by=owner, **kwargs).raw

    return _make


@pytest.fixture
def raw_key(user, make_key):
    return make_key(user)


@pytest.fixture
def api(raw_key):
    """A DRF client that sends the user's key the way the official client does."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=raw_key)
    return client


def wait_for(predicate, timeout: float = 90) -> None:
    """Poll ``predicate`` until it is true; fail the test when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def wait_closed(calls=None, timeout: float = 30) -> None:
    """Wait until none of ``calls`` (an Invocation queryset; every call by default) is
    still open. A sync call's caller is answered before its worker writes the close
    (``EXECUTION_ANSWER_BEFORE_CLOSE``): a test reading the call's row, its usage or its
    payer's balance right after the answer waits for that one statement first."""
    from execution.models import Invocation

    calls = Invocation.objects.all() if calls is None else calls
    wait_for(lambda: not calls.exclude(status__in=Invocation.FINISHED).exists(), timeout)


def require_env(*names: str) -> dict:
    """Services tests fail, never skip, when the services are not configured."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"This test needs {', '.join(missing)} (pass 2 of `make test` sets them).")
    return {n: os.environ[n] for n in names}


def database_url_for_subprocess() -> str:
    """The URL of the database this test run uses (the test database, not the real one)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def start_worker(env_overrides: dict, queues: str = "default,builds,execution,billing",
                 pool: tuple = ()):
    """Start a real `celery worker` process with the test settings; wait until it answers.
    ``pool``: its pool's options (e.g. ``("-P", "threads")``; Celery's default otherwise)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marketplace.settings.test",
           "DATABASE_URL": database_url_for_subprocess(), **env_overrides}
    log = open(ROOT / "var" / f"celery-worker-{os.getpid()}-{time.time_ns()}.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "marketplace", "worker", "-Q", queues,
         "-c", "2", *pool, "-l", "info", "--without-gossip", "--without-mingle",
         "-n", f"test-{time.time_ns()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    return process, log


def wait_for_worker(app, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {process.returncode}")
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError("celery worker did not answer within the timeout")


def stop_worker(process, log) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@contextmanager
def gunicorn_web(**env_overrides: str):
    """The production web tier: gunicorn with uvicorn workers and psycopg's pool, on the
    test database, on a free port of 127.0.0.1. Yields its URL."""
    require_env("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marketplace.settings.test",
           "DATABASE_URL": database_url_for_subprocess(), "DATABASE_POOL": "true",
           "HOST": "127.0.0.1", "PORT": str(port), **env_overrides}
    with open(ROOT / "var" / f"gunicorn-test-{port}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
             "--access-logfile", "/dev/null", "marketplace.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, "gunicorn exited; see var/gunicorn-test-*.log"
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # still booting its worker
            return False

    try:
        wait_for(up, timeout=60)
        yield url
    finally:
        with suppress(ProcessLookupError):  # it may have exited (the assertion above says)
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker on the configured broker (Redis in pass 2), for the whole session."""
    require_env("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    from marketplace.celery import app

    (ROOT / "var").mkdir(exist_ok=True)
    process, log = start_worker({})
    try:
        wait_for_worker(app, process)
        yield process
    finally:
        stop_worker(process, log)


@pytest.fixture
def builds_run(request, settings):
    """Eager builds (no broker) need nothing; with a broker, a real worker must be running."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        request.getfixturevalue("celery_worker")


@pytest.fixture(scope="session", autouse=True)
def _stop_test_runners():
    """Runners outlive calls by design; the suite's own are stopped when it ends, and any a
    run before this one left (killed, or stopped mid-start) are cleared before it starts."""
    from django.conf import settings

    run_dir = Path(settings.EXECUTION_RUN_DIR)
    _stop_runners(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    yield
    _stop_runners(run_dir)


def _stop_runners(run_dir: Path) -> None:
    from execution.runner.server import stop_all

    stop_all(str(run_dir))
