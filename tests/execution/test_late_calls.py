"""A worker never runs a sync call its caller has stopped waiting for, nor reopens a call
that was closed before it started (both passes: the worker's code, called directly)."""
import datetime

import pytest

from billing.models import Account, UsageRecord
from execution import results, services
from execution.models import Invocation
from marketplace.services import api_key_authenticate
from tests.execution.conftest import bundle_files, fail_the_first_close, publish

pytestmark = pytest.mark.django_db(transaction=True)


def admit(user, raw_key, name: str):
    key = api_key_authenticate(raw=raw_key)
    payload = {"content_type": "text", "data": "late"}
    invocation = services.invocation_admit(
        key=key, user=user, owner=user.username, name=name, version=None, payload=payload,
        input_bytes=4, options=services.CallOptions(timeout=5))
    return invocation, payload


def test_a_call_whose_caller_stopped_waiting_is_not_run(probe, user, raw_key, builds_run):
    invocation, payload = admit(user, raw_key, "probe")
    row = services.invocation_row(invocation)
    late = invocation.created_at - datetime.timedelta(
        seconds=services.invocation_wait_seconds(invocation) + 1)
    row["created_at"] = late.isoformat()
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload, row=row)
    assert envelope == {"error": {
        "message": "The call waited in the queue until its caller stopped waiting.",
        "error_type": "TimeoutError"}}
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.run_ms) == ("failed", None)  # never reached a runner
    usage = UsageRecord.objects.get(request_id=invocation.request_id)
    assert (usage.status, usage.held) == ("released", 0)
    assert Account.objects.get(user=user).reserved == 0


def test_a_composing_call_closed_before_it_starts_is_not_reopened(user, raw_key, builds_run):
    publish(user, "spaces", bundle_files("spaces"), pipeline_enabled=True)
    invocation, payload = admit(user, raw_key, "spaces")
    lost = services.invocation_lost(invocation=invocation)  # its caller gave up first
    again = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                    row=services.invocation_row(invocation))
    assert again == lost and lost["error"]["error_type"] == "TimeoutError"
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.derived_key_id) == ("failed", None)
    assert UsageRecord.objects.get(request_id=invocation.request_id).status == "released"
    # The key written with the running mark that changed nothing is retired at once.
    from marketplace.models import ApiKey

    [written] = ApiKey.objects.filter(name=f"call {invocation.request_id}")
    assert written.revoked_at is not None


LOST = {"error": {"message": "The call was lost by the platform's database; it is not "
                             "billed.", "error_type": "InternalError"}}


def _now_another_calls(invocation) -> str:
    """The call's rows as if a crash of the database lost them and their ids went to
    another call (call writes need not wait for the disk): same ids, another request id."""
    import uuid

    other = uuid.uuid4()
    Invocation.objects.filter(pk=invocation.pk).update(request_id=other, trace_id=other)
    UsageRecord.objects.filter(request_id=invocation.request_id).update(request_id=other)
    return other


def test_a_message_whose_row_is_now_another_calls_does_not_run_it(probe, user, raw_key,
                                                                   builds_run):
    invocation, payload = admit(user, raw_key, "probe")
    other = _now_another_calls(invocation)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                       request_id=str(invocation.request_id))
    assert envelope == LOST
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.request_id, stored.status, stored.run_ms) == (other, "queued", None)


def test_a_worker_never_closes_another_call_that_got_its_calls_id(probe, user, raw_key,
                                                                  builds_run):
    invocation, payload = admit(user, raw_key, "probe")
    row = services.invocation_row(invocation)  # what a sync call's message carries
    reserved = Account.objects.get(user=user).reserved
    other = _now_another_calls(invocation)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload, row=row)
    assert envelope == LOST  # it ran, and nobody else's call was closed with its answer
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.result) == ("queued", None)
    if results.direct():  # (pass 2) its caller was sent one answer, never a second
        import redis
        from django.conf import settings

        sent = redis.Redis.from_url(settings.REDIS_URL).lrange(
            f"algostore:result:{invocation.request_id}", 0, -1)
        assert len(sent) == 1
    usage = UsageRecord.objects.get(request_id=other)
    assert (usage.status, Account.objects.get(user=user).reserved) == ("held", reserved)


def test_a_result_the_database_refuses_still_closes_the_call(probe, user, raw_key, builds_run,
                                                             monkeypatch):
    """Should the database refuse what closing a call writes (a result the runner's checks
    let through), the call is still closed, as the algorithm's error, and its hold released:
    never left running with its caller's credits held."""
    from django.db import DataError

    invocation, payload = admit(user, raw_key, "probe")
    tried = fail_the_first_close(monkeypatch, DataError("unsupported Unicode escape sequence"))
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                       row=services.invocation_row(invocation))
    assert tried == [invocation.request_id] * 2  # refused, then closed as failed
    assert envelope == {"error": {"message": "The algorithm's result could not be stored.",
                                  "error_type": "AlgorithmError"}}
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.error_type) == ("failed", "AlgorithmError")
    usage = UsageRecord.objects.get(request_id=invocation.request_id)
    assert (usage.status, usage.held) == ("released", 0)
    assert Account.objects.get(user=user).reserved == 0
