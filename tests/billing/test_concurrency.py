"""Money under load, on the real services (pass 2): PostgreSQL, Redis, gunicorn with uvicorn
workers, real Celery workers and the sandbox. Nothing here is stubbed."""
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import IntegrityError, transaction
from django.db.models import F
from django.core.management import call_command

from billing import services
from billing.models import Account, LedgerTransaction, UsageRecord
from execution.models import Invocation
from marketplace import services as marketplace_services
from tests.billing.conftest import CREDIT, balance
from tests.billing.conftest import settled as wait_settled
from tests.conftest import (gunicorn_web, require_env, start_worker, stop_worker, wait_closed,
                            wait_for, wait_for_worker)
from tests.execution.conftest import bundle_files, publish
from tests.factories import UserFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
GRANT = 10_000 * CREDIT


@pytest.fixture
def web(celery_worker):
    """The production web tier: gunicorn with two uvicorn workers and psycopg's pool, on the
    test database."""
    with gunicorn_web(DATABASE_POOL_MAX="12", WEB_CONCURRENCY="2") as url:
        yield url


def test_200_concurrent_calls_from_an_account_that_can_afford_50(web):
    author, caller = UserFactory(), UserFactory()
    publish(author, "probe", bundle_files("probe"), royalty_microcredits=100 * CREDIT)
    key = marketplace_services.api_key_create(created_by=caller, name="burst").raw
    # With timeout=2 a call holds 100 credits of royalty + 2 of compute: 5,100 pays for 50.
    services.adjustment_create(account=balance(caller), amount=5_100 * CREDIT - GRANT,
                               reason="test: exactly fifty calls", actor=author)
    url = f"{web}/v1/algo/{author.username}/probe?timeout=2"
    start = threading.Barrier(200)

    def call(_: int):
        session = requests.Session()
        start.wait()
        response = session.post(url, json={"action": "sleep", "seconds": 0.05},
                                headers={"Authorization": key}, timeout=120)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(call, range(200)))

    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 50 and statuses.count(402) == 150, sorted(set(statuses))
    assert all(body["result"] == "slept" for status, body in answers if status == 200)
    assert all(body["error"]["error_type"] == "PaymentRequired"
               for status, body in answers if status == 402)
    assert Invocation.objects.filter(caller=caller).count() == 50  # a 402 records nothing
    wait_closed(Invocation.objects.filter(caller=caller))
    wait_settled()
    settled = UsageRecord.objects.filter(payer__user=caller, status="settled")
    assert settled.count() == 50
    account = balance(caller)
    assert account.balance == 5_100 * CREDIT - sum(u.total for u in settled)
    assert account.balance >= 0 and account.reserved == 0
    call_command("check_ledger")
    # Never negative at any moment: the database itself refuses a hold past the balance.
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(reserved=F("balance") + 1)


def _kill(worker) -> None:
    children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                              text=True).stdout.split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    worker.kill()
    worker.wait()


def test_killing_the_worker_mid_burst_bills_every_finished_call_exactly_once(
        live_server, settings, builds_run):
    require_env("CELERY_BROKER_URL")
    from marketplace.celery import app

    author, caller = UserFactory(), UserFactory()
    publish(author, "probe", bundle_files("probe"), royalty_microcredits=CREDIT)
    key = marketplace_services.api_key_create(created_by=caller, name="burst").raw
    settings.EXECUTION_QUEUE = queue = f"execution-kill-{os.getpid()}"
    # Tasks a dead worker held come back after 3 s, looked for every second.
    overrides = {"EXECUTION_QUEUE": queue, "CELERY_VISIBILITY_TIMEOUT": "3",
                 "CELERY_RESTORE_INTERVAL": "1", "CELERY_RESTORE_THROTTLE": "1"}
    worker, log = start_worker(overrides, queues=queue)
    wait_for_worker(app, worker)
    request_ids = []
    try:
        for _ in range(24):
            response = requests.post(
                f"{live_server.url}/v1/algo/{author.username}/probe?output=void&timeout=5",
                json={"action": "sleep", "seconds": 0.25}, headers={"Authorization": key},
                timeout=30)
            assert response.status_code == 200, response.text
            request_ids.append(response.json()["request_id"])
        wait_for(lambda: Invocation.objects.filter(request_id__in=request_ids,
                                                   status="succeeded").count() >= 4, 60)
    finally:
        _kill(worker)  # in the middle of the burst, as the OOM killer or a lost machine would
        stop_worker(worker, log)
    # Calls closed before the kill (billed, or about to be: settling is batched).
    before = {u.request_id: u.finished_at for u in UsageRecord.objects.filter(
        status__in=["pending", "settled"])}
    unfinished = Invocation.objects.filter(request_id__in=request_ids).exclude(
        status__in=Invocation.FINISHED).count()
    assert 0 < len(before) < 24 and unfinished > 0

    worker, log = start_worker(overrides, queues=queue)  # the worker comes back
    try:
        wait_for_worker(app, worker)
        wait_for(lambda: Invocation.objects.filter(
            request_id__in=request_ids, status__in=Invocation.FINISHED).count() == 24, 120)
    finally:
        stop_worker(worker, log)

    wait_settled()
    for invocation in Invocation.objects.filter(request_id__in=request_ids):
        usage = UsageRecord.objects.get(request_id=invocation.request_id)
        charges = LedgerTransaction.objects.filter(kind="usage",
                                                   request_id=invocation.request_id).count()
        if invocation.status == "succeeded":
            assert (usage.status, charges) == ("settled", 1)
        else:
            assert (usage.status, charges) == ("released", 0)
    for request_id, finished_at in before.items():  # closed before the kill: never again
        assert UsageRecord.objects.get(request_id=request_id).finished_at == finished_at
    settled = UsageRecord.objects.filter(payer__user=caller, status="settled")
    assert balance(caller).balance == GRANT - sum(u.total for u in settled)
    assert balance(caller).reserved == 0
    call_command("check_ledger")
