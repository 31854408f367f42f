"""The database closes the platform's connections under it (a restart, a failover): the call
that finds its connection gone fails at once, with the envelope, unbilled (or, answered
before its close, has its close written again on a fresh connection, and is billed); the
pool of the process replaces the connections it kept idle, so that call is the only one to
fail.
On the real services (pass 2): PostgreSQL closes the connections (``pg_terminate_backend``)
of a real Celery worker and of gunicorn, each on psycopg's pool as deployed."""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.db import connection

from billing.models import LedgerTransaction, UsageRecord
from execution.models import Invocation
from marketplace import services as marketplace_services
from tests.billing.conftest import CREDIT, balance
from tests.conftest import (gunicorn_web, require_env, start_worker, stop_worker, wait_closed,
                            wait_for, wait_for_worker)
from tests.execution.conftest import bundle_files, publish
from tests.factories import UserFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def probe_and_key(transactional_db):
    assert connection.vendor == "postgresql", "pass 2 runs on PostgreSQL"
    author, caller = UserFactory(), UserFactory()
    publish(author, "probe", bundle_files("probe"), royalty_microcredits=CREDIT)
    key = marketplace_services.api_key_create(created_by=caller, name="lost").raw
    return author, caller, key


def close_connections_of(application_name: str) -> int:
    """What a restart of the database does to a process's connections."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE application_name = %s", [application_name])
        return cursor.fetchone()[0]


def allow_connections(allowed: bool) -> None:
    """Whether the test database takes new connections (those open stay), set from another
    database: PostgreSQL refuses to set it from the one it is about."""
    import psycopg

    found = connection.settings_dict
    with psycopg.connect(host=found["HOST"] or "127.0.0.1", port=found["PORT"] or 5432,
                         user=found["USER"] or "postgres", password=found["PASSWORD"] or None,
                         dbname="postgres", autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {connection.ops.quote_name(found['NAME'])} "
                      f"WITH ALLOW_CONNECTIONS {'true' if allowed else 'false'}")


def calls_to(author) -> list[Invocation]:
    return list(Invocation.objects.filter(algorithm_path=f"{author.username}/probe")
                .order_by("created_at"))



def call(url: str, key: str, text: str) -> requests.Response:
    """A sync call (timeout 5 s: a caller nobody answers waits 20 s, then gets TimeoutError)."""
    return requests.post(f"{url}?timeout=5", json=text, headers={"Authorization": key},
                         timeout=60)


@contextmanager
def serving_worker(settings, live_server, author, key: str):
    """The execution worker as deployed (threads, psycopg's pool), on a queue of its own,
    its connections named, once a first call has gone through it. Yields the connections'
    name, the probe's URL and the path of the worker's log."""
    from marketplace.celery import app

    require_env("CELERY_BROKER_URL")
    settings.EXECUTION_QUEUE = queue = f"execution-lost-{os.getpid()}"
    name = f"algostore-test-worker-{os.getpid()}"
    worker, log = start_worker(
        {"EXECUTION_QUEUE": queue, "CELERY_CUSTOM_WORKER_POOL": "execution.pool:TaskPool",
         "DATABASE_POOL": "true", "PGAPPNAME": name}, queues=queue, pool=("-P", "custom"))
    url = f"{live_server.url}/v1/algo/{author.username}/probe"
    try:
        wait_for_worker(app, worker)
        assert call(url, key, "one").json()["result"] == "echo: one"
        yield name, url, log.name
    finally:
        stop_worker(worker, log)


@pytest.mark.parametrize("capped", [False, True], ids=["key", "capped key"])
def test_a_worker_whose_database_connections_were_closed_loses_no_call_and_bills_the_answered(
        live_server, settings, builds_run, probe_and_key, capped):
    """A sync call's close, written after its caller was answered, finds its connection
    gone: it is written again on a fresh one, and the call is billed as answered. With a
    capped key the call closes before its answer (its hold counts against a cap), in a
    transaction whose failed rollback hides the lost connection behind another one the pool
    lent (the error itself tells): the call fails at once, unbilled, and its caller is told.
    An async call's worker reads its row first and finds the connection gone: the call is
    closed, unbilled, with the error its caller fetches. The calls after each run."""
    author, caller, key = probe_and_key
    if capped:
        key = marketplace_services.api_key_create(created_by=caller, name="capped",
                                                  monthly_spend_cap=1000 * CREDIT).raw
    with serving_worker(settings, live_server, author, key) as (name, url, _log):
        before = balance(caller)
        assert close_connections_of(name) >= 1
        lost = call(url, key, "two")
        answers = [call(url, key, text).json() for text in ("three", "four", "five")]
        # An async call: its worker reads its row first, and finds the connection gone.
        wait_closed()  # (not while the last sync call's close, after its answer, is written)
        assert close_connections_of(name) >= 1
        queued = []
        for text in ("six", "seven"):  # one at a time: the first finds the connection gone
            queued.append(requests.post(f"{url}?output=void", json=text, headers={
                "Authorization": key}, timeout=30).json()["request_id"])
            wait_for(lambda: Invocation.objects.filter(
                request_id=queued[-1], status__in=Invocation.FINISHED).exists(), 30)
        results = [requests.get(f"{live_server.url}/v1/algo/requests/{request_id}",
                                headers={"Authorization": key}, timeout=30).json()
                   for request_id in queued]

    failure = {"message": "The call could not be run (OperationalError).",
               "error_type": "InternalError"}
    assert lost.status_code == 200
    if capped:
        assert lost.json() == {"error": failure}
    else:
        assert lost.json()["result"] == "echo: two"
    assert [answer["result"] for answer in answers] == ["echo: three", "echo: four",
                                                        "echo: five"]
    assert results[0]["error"] == failure
    assert results[1]["result"] == "echo: seven"
    wait_closed()
    calls = calls_to(author)
    lost_ones = {calls[1].pk, calls[5].pk} if capped else {calls[5].pk}
    assert len(calls) == 7 and [c.status for c in calls] == [
        "failed" if c.pk in lost_ones else "succeeded" for c in calls]
    for failed in (c for c in calls if c.pk in lost_ones):
        assert (failed.error_type, failed.error_message) == (
            "InternalError", "The call could not be run (OperationalError).")
        usage = UsageRecord.objects.get(request_id=failed.request_id)
        assert (usage.status, usage.held) == ("released", 0)
        assert not LedgerTransaction.objects.filter(request_id=failed.request_id).exists()
    after = balance(caller)  # every answered call is billed, the lost ones not
    billed = UsageRecord.objects.filter(request_id__in=[
        c.request_id for c in calls[1:] if c.pk not in lost_ones])
    assert [u.status for u in billed] == ["settled"] * (6 - len(lost_ones))
    assert after.balance == before.balance - sum(u.total for u in billed)
    assert after.reserved == 0


def test_a_call_its_worker_cannot_close_is_answered_and_closed_once_the_database_is_back(
        live_server, settings, builds_run, probe_and_key):
    """The database closes the worker's connections mid-call and takes no new ones: the
    caller is still answered when the run ends (before the close, which cannot be written),
    and the call is closed, unbilled, once the database takes connections again."""
    author, caller, key = probe_and_key
    with serving_worker(settings, live_server, author, key) as (name, url, log):
        with ThreadPoolExecutor(1) as calls:
            sleeping = calls.submit(call, url, key, {"action": "sleep", "seconds": 3})
            time.sleep(1)  # the call is in its runner, for two seconds more
            allow_connections(False)
            try:
                assert close_connections_of(name) >= 1
                answer = sleeping.result(timeout=60)
                # The close, after the answer, failed once more on a fresh connection (the
                # database still refuses them), and the worker gave it to close_broken.
                wait_for(lambda: "could not be closed after its failure" in
                         Path(log).read_text(), 45)
            finally:
                allow_connections(True)
        assert (answer.status_code, answer.json()["result"]) == (200, "slept")
        wait_for(lambda: calls_to(author)[-1].status == "failed", 60)
        assert call(url, key, "three").json()["result"] == "echo: three"

    wait_closed()
    calls = calls_to(author)
    assert [c.status for c in calls] == ["succeeded", "failed", "succeeded"]
    assert (calls[1].error_type, calls[1].error_message) == (
        "InternalError", "The call was answered, but could not be recorded (OperationalError); "
        "it is not billed.")
    usage = UsageRecord.objects.get(request_id=calls[1].request_id)
    assert (usage.status, usage.held) == ("released", 0)
    assert balance(caller).reserved == 0


@pytest.fixture
def web(celery_worker):
    """gunicorn with one uvicorn worker and psycopg's pool, its connections named."""
    name = f"algostore-test-web-{os.getpid()}"
    with gunicorn_web(WEB_CONCURRENCY="1", PGAPPNAME=name) as url:
        yield url, name


def test_a_web_process_whose_database_connections_were_closed_fails_one_request_only(
        web, probe_and_key):
    """The request that finds its connection gone is refused with the envelope, nothing
    admitted; the requests after it are served. Once on Django's views (a call's result),
    once on the invocation fast path."""
    url, name = web
    author, caller, key = probe_and_key
    call_url = f"{url}/v1/algo/{author.username}/probe"
    assert call(call_url, key, "one").json()["result"] == "echo: one"
    request_id = calls_to(author)[0].request_id

    def result_of(request_id):
        return requests.get(f"{url}/v1/algo/requests/{request_id}",
                            headers={"Authorization": key}, timeout=30)

    assert close_connections_of(name) >= 1
    lost_view = result_of(request_id)
    after_view = [call(call_url, key, text).json() for text in ("two", "three")]
    assert close_connections_of(name) >= 1
    lost_call = call(call_url, key, "four")
    after_call = [call(call_url, key, "five").json(), result_of(request_id).json()]

    internal = {"error": {"message": "Internal server error.", "error_type": "InternalError"}}
    assert (lost_view.status_code, lost_view.json()) == (500, internal)
    assert (lost_call.status_code, lost_call.json()) == (500, internal)
    assert [answer["result"] for answer in after_view] == ["echo: two", "echo: three"]
    assert after_call[0]["result"] == "echo: five"
    assert after_call[1]["result"] == "echo: one"
    wait_closed()
    calls = calls_to(author)  # nothing admitted for the refused call
    assert [c.status for c in calls] == ["succeeded"] * 4
    assert UsageRecord.objects.filter(payer__user=caller).count() == 4
    assert balance(caller).reserved == 0
