"""Which writes wait for the disk at commit on PostgreSQL: a call's own writes (admission,
closing, settlement batches) do not, by default; a refund does, and nothing leaks into the
connection's later transactions."""
import uuid

import pytest
from django.db import connection, transaction

from billing.models import Account, UsageRecord
from billing.services import usage as usage_services
from execution.models import Invocation
from marketplace import services as marketplace_services
from marketplace.row_update import Update, commit_without_waiting_for_disk, write_chain
from tests.billing.conftest import settled
from tests.factories import UserFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def commit_waits_for_disk() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0] == "on"


def test_a_chain_that_does_not_wait_changes_only_its_own_transaction():
    assert connection.vendor == "postgresql"
    account = Account.objects.get(user=UserFactory())
    assert write_chain([Update(Account, account.pk, add={"reserved": 3})],
                       wait_for_disk=False) == [account.pk]  # autocommit: its own transaction
    assert commit_waits_for_disk()  # the session's next transactions wait again
    with transaction.atomic():
        assert commit_waits_for_disk()
        write_chain([Update(Account, account.pk, add={"reserved": 4})], wait_for_disk=False)
        assert not commit_waits_for_disk()  # the whole enclosing transaction
    assert commit_waits_for_disk()
    with transaction.atomic():
        commit_without_waiting_for_disk()
        assert not commit_waits_for_disk()
    assert commit_waits_for_disk() and Account.objects.get(pk=account.pk).reserved == 7


def _admitted(key):
    request_id = uuid.uuid4()
    call = Invocation(request_id=request_id, trace_id=request_id, algorithm_path="a/b",
                      version_text="1.0.0", input_content_type="json",
                      options={"timeout": 5})
    usage = usage_services.usage_reserve(invocation=call, key=key)
    call.usage_hold = usage_services.usage_hold_of(usage)
    return call


def _closing(call):
    return Update(Invocation, call.pk, set={"status": "failed"},
                  where={"status": ("queued", "running")})


def test_a_calls_writes_and_settlement_do_not_wait_but_a_refund_does(monkeypatch):
    # Settled here, not by a settlement task a worker of another test might run first.
    monkeypatch.setattr(usage_services, "schedule_settlement", lambda: None)
    key = marketplace_services.api_key_create(created_by=UserFactory(), name="k").key
    with transaction.atomic():  # a payer this process has not seen: may open an account
        _admitted(key)
        assert commit_waits_for_disk()
    with transaction.atomic():  # admission
        call = _admitted(key)
        assert not commit_waits_for_disk()
    with transaction.atomic():  # closing a call that succeeded
        assert usage_services.usage_finish(invocation=call, succeeded=True,
                                           closing=_closing(call))
        assert not commit_waits_for_disk()
    assert UsageRecord.objects.get(invocation_id=call.pk).status in ("pending", "settled")
    with transaction.atomic():  # a settlement batch (a worker's may have taken the call)
        usage_services.usage_settle_pending()
        assert not commit_waits_for_disk()
    settled(Invocation.objects.filter(pk=call.pk))  # (the first call stays open)
    assert UsageRecord.objects.get(invocation_id=call.pk).status == "settled"
    root = _admitted(key)
    with transaction.atomic():  # a root that failed through the platform: refunded
        assert usage_services.usage_finish(invocation=root, succeeded=False,
                                           platform_fault=True, closing=_closing(root))
        assert commit_waits_for_disk()
    assert UsageRecord.objects.get(invocation_id=root.pk).status == "released"


def test_with_the_setting_on_every_call_write_waits(settings, monkeypatch):
    monkeypatch.setattr(usage_services, "schedule_settlement", lambda: None)
    settings.CALL_WRITES_WAIT_FOR_DISK = True
    key = marketplace_services.api_key_create(created_by=UserFactory(), name="k").key
    with transaction.atomic():
        call = _admitted(key)
        assert usage_services.usage_finish(invocation=call, succeeded=True,
                                           closing=_closing(call))
        usage_services.usage_settle_pending()
        assert commit_waits_for_disk()


def test_a_process_killed_while_scheduling_settlement_leaves_a_run_queued(settings,
                                                                          monkeypatch):
    """Settlement is sent, then marked as scheduled: a process that dies between the two
    leaves a run queued, never a mark without a run (which kept every call finishing
    after it out of the ledger until the next beat: seen when a test killed a worker)."""
    import django.core.cache

    from marketplace.celery import app

    real = django.core.cache.cache
    real.delete(usage_services.SETTLE_SCHEDULED)

    class DiesOnSet:  # the process is killed as it marks the run (whichever way it marks)
        get, delete = staticmethod(real.get), staticmethod(real.delete)

        def set(self, *args, **kwargs):
            raise SystemExit("killed")

        def add(self, *args, **kwargs):
            real.add(*args, **kwargs)
            raise SystemExit("killed")

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append(name))
    monkeypatch.setattr(django.core.cache, "cache", DiesOnSet())
    with pytest.raises(SystemExit):
        usage_services.send_settlement()
    assert sent == ["billing.settle"] and real.get(usage_services.SETTLE_SCHEDULED) is None
    monkeypatch.setattr(django.core.cache, "cache", real)
    assert usage_services.send_settlement()  # the next try (another process): sent, marked
    assert not usage_services.send_settlement()  # marked: its calls join the queued run
    assert sent == ["billing.settle", "billing.settle"]
    real.delete(usage_services.SETTLE_SCHEDULED)
