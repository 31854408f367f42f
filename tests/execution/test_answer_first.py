"""A sync call's waiting caller is answered before the call's close is written
(``EXECUTION_ANSWER_BEFORE_CLOSE``), and the close still follows, exactly once: the worker's
code, called directly, its answers read from Redis (pass 2). The whole path, through a real
worker and the official client, is in test_invocations.py and test_fast_path.py."""
import json

import pytest
import redis

from billing import services as billing_services
from billing.models import Account, UsageRecord
from execution import results, services
from execution.models import Invocation
from marketplace.services import api_key_authenticate
from tests.execution.conftest import fail_the_first_close

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def admit(user, raw_key, name: str = "probe", **options):
    key = api_key_authenticate(raw=raw_key)
    payload = {"content_type": "text", "data": "first"}
    invocation = services.invocation_admit(
        key=key, user=user, owner=user.username, name=name, version=None, payload=payload,
        input_bytes=5, options=services.CallOptions(timeout=5, **options))
    return invocation, payload


def answers(settings, request_id) -> list[dict]:
    """What the call's caller was sent on the result channel (its own list: no inbox)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    return [json.loads(item) for item in client.lrange(f"algostore:result:{request_id}", 0, -1)]


@pytest.fixture
def at_close(monkeypatch, settings):
    """What the caller had been sent, and the call's status, when its close was written."""
    seen, finish = [], billing_services.usage_finish

    def looking(**kwargs):
        invocation = kwargs["invocation"]
        seen.append((answers(settings, invocation.request_id),
                     Invocation.objects.get(pk=invocation.pk).status))
        return finish(**kwargs)

    monkeypatch.setattr(billing_services, "usage_finish", looking)
    return seen


def test_the_caller_is_answered_before_the_close_which_still_bills_the_call(
        probe, user, raw_key, builds_run, settings, at_close):
    invocation, payload = admit(user, raw_key)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                       row=services.invocation_row(invocation))
    assert envelope["result"] == "echo: first"
    assert at_close == [([envelope], "queued")]  # answered; not closed yet
    assert answers(settings, invocation.request_id) == [envelope]  # once
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.result) == ("succeeded", envelope)
    usage = UsageRecord.objects.get(request_id=invocation.request_id)  # billed (or soon)
    assert usage.status in ("pending", "settled") and usage.billable and usage.held > 0


@pytest.mark.parametrize("why", ["setting off", "delivered again", "async"])
def test_otherwise_the_answer_comes_once_the_close_is_written(
        probe, user, raw_key, builds_run, settings, at_close, why):
    """With the setting off, and for a message delivered again (a second run of a call
    another worker may still be running must not answer before its close is known to
    win), the close is written first. An async call has no waiting caller to answer."""
    settings.EXECUTION_ANSWER_BEFORE_CLOSE = why != "setting off"
    invocation, payload = admit(user, raw_key, output="void" if why == "async" else "default")
    row = None if why == "delivered again" else services.invocation_row(invocation)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload, row=row,
                                       request_id=str(invocation.request_id))
    assert envelope["result"] == "echo: first"
    assert at_close[0][0] == []
    assert answers(settings, invocation.request_id) == ([] if why == "async" else [envelope])
    assert Invocation.objects.get(pk=invocation.pk).status == "succeeded"


def test_a_close_refused_after_the_answer_leaves_the_answer_and_bills_nothing(
        probe, user, raw_key, builds_run, settings, monkeypatch):
    """The database refuses the close (a result the runner's checks let through): the
    caller keeps the answer it has, is sent nothing more, and the call is recorded failed,
    unbilled, its hold released."""
    from django.db import DataError

    invocation, payload = admit(user, raw_key)
    tried = fail_the_first_close(monkeypatch, DataError("unsupported Unicode escape sequence"))
    services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                            row=services.invocation_row(invocation))
    assert tried == [invocation.request_id] * 2  # refused, then closed as failed
    sent = answers(settings, invocation.request_id)
    assert [answer.get("result") for answer in sent] == ["echo: first"]
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.error_type) == ("failed", "AlgorithmError")
    usage = UsageRecord.objects.get(request_id=invocation.request_id)
    assert (usage.status, usage.held, usage.billable) == ("released", 0, False)
    assert Account.objects.get(user=user).reserved == 0


def test_an_answer_that_cannot_be_sent_first_is_sent_after_the_close(
        probe, user, raw_key, builds_run, settings, monkeypatch, at_close):
    """Redis refuses the early answer: the call is closed as usual and its caller answered
    after, as with the setting off; nothing is lost."""
    publish, failed = results.publish, []

    def fail_the_first(request_id, envelope):
        if not failed:
            failed.append(request_id)
            raise redis.ConnectionError("Connection refused")
        return publish(request_id, envelope)

    monkeypatch.setattr(results, "publish", fail_the_first)
    invocation, payload = admit(user, raw_key)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                       row=services.invocation_row(invocation))
    assert failed == [invocation.request_id] and at_close == [([], "queued")]
    assert answers(settings, invocation.request_id) == [envelope]
    assert envelope["result"] == "echo: first"
    assert Invocation.objects.get(pk=invocation.pk).status == "succeeded"


def test_a_worker_whose_close_breaks_after_the_answer_does_not_answer_again(
        probe, user, raw_key, builds_run, settings, monkeypatch):
    """The close raises (the database gone mid-statement) in the task itself: the caller,
    answered already, is sent nothing more, and the call is closed failed, unbilled, by the
    task's own recovery (``invocation_broke``)."""
    from django.db import OperationalError

    from execution import tasks

    invocation, payload = admit(user, raw_key)
    tried = fail_the_first_close(monkeypatch,
                                 OperationalError("server closed the connection unexpectedly"))
    task = tasks.invoke
    task.push_request(id="a-task", delivery_info={}, is_eager=False, ignore_result=True)
    try:
        tasks._run_call(task, invocation.pk, payload, services.invocation_row(invocation),
                        str(invocation.request_id), early=False)
    finally:
        task.pop_request()
    assert tried == [invocation.request_id] * 2  # broke, then closed by invocation_broke
    assert [answer.get("result") for answer in answers(settings, invocation.request_id)] == [
        "echo: first"]
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.error_type, stored.error_message) == (
        "failed", "InternalError",
        "The call was answered, but could not be recorded (OperationalError); it is not "
        "billed.")
    usage = UsageRecord.objects.get(request_id=invocation.request_id)
    assert (usage.status, usage.billable) == ("released", False)
    assert Account.objects.get(user=user).reserved == 0


@pytest.mark.parametrize("limit", ["a small balance", "a capped key"])
def test_a_hold_that_could_refuse_the_payers_next_call_is_released_before_the_answer(
        probe, user, raw_key, builds_run, settings, at_close, make_key, monkeypatch, limit):
    """Answered before its close, a call's hold would still be held (at its most) when its
    caller's next call is admitted: with less than two more such holds left besides it,
    or against a key's monthly cap, that call could be refused. Those calls close first:
    a next call admitted the moment the caller is answered is admitted (here each limit
    leaves room for one hold beyond the call's price, not for two holds)."""
    from marketplace.errors import PaymentRequiredError

    held = billing_services.max_cost(royalty=0, timeout=5)  # (its author calls it)
    if limit == "a capped key":
        raw_key = make_key(user, monthly_spend_cap=2 * held - 1)
    else:
        Account.objects.filter(user=user).update(balance=2 * held - 1)
    invocation, payload = admit(user, raw_key)
    assert invocation.usage_hold["held"] == held
    assert invocation.usage_headroom == Account.objects.get(user=user).available
    assert bool(invocation.usage_hold["cap_month"]) == (limit == "a capped key")
    publish, next_calls = results.publish, []

    def then_the_next_call(request_id, envelope):  # as the caller would, once answered
        try:
            next_calls.append(admit(user, raw_key)[0].usage_hold["held"])
        except PaymentRequiredError:
            next_calls.append("refused")
        return publish(request_id, envelope)

    monkeypatch.setattr(results, "publish", then_the_next_call)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                       row=services.invocation_row(invocation))
    assert envelope["result"] == "echo: first"
    assert at_close == [([], "queued")]  # closed first
    assert answers(settings, invocation.request_id) == [envelope]
    assert next_calls == [held]


def test_a_close_that_meets_a_lost_connection_after_the_answer_is_written_again(
        probe, user, raw_key, builds_run, settings, monkeypatch):
    """The database dropped the worker's connection (a restart) between the answer and the
    close: the close is written again, on a fresh connection, once; the call is billed
    as answered, and its caller is sent nothing more."""
    import psycopg
    from django.db import OperationalError

    invocation, payload = admit(user, raw_key)
    lost = OperationalError("the connection is lost")
    lost.__cause__ = psycopg.OperationalError("server closed the connection unexpectedly")
    tried = fail_the_first_close(monkeypatch, lost)
    envelope = services.invocation_run(invocation_pk=invocation.pk, payload=payload,
                                       row=services.invocation_row(invocation))
    assert envelope["result"] == "echo: first" and tried == [invocation.request_id] * 2
    assert answers(settings, invocation.request_id) == [envelope]
    stored = Invocation.objects.get(pk=invocation.pk)
    assert (stored.status, stored.result) == ("succeeded", envelope)
    usage = UsageRecord.objects.get(request_id=invocation.request_id)
    assert usage.status in ("pending", "settled") and usage.billable
