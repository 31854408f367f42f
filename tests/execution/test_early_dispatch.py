"""A call sent before its admission was written (execution.early_dispatch), as its worker
sees it: the worker's code, called directly, with Redis carrying the word (pass 2). The
whole path, through a real worker, is in test_fast_path.py."""
import time

import pytest
import redis

from billing.models import UsageRecord
from execution import early_dispatch, services
from execution.models import Invocation
from marketplace.services import api_key_authenticate

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class Sent(Exception):
    """Stops an admission once its task would have been sent: nothing is written."""


def sent_early(user, raw_key, name: str) -> tuple[dict, dict]:
    """The task arguments of a call sent early (its row and payload), never admitted."""
    key, captured = api_key_authenticate(raw=raw_key), {}

    def capture(invocation, payload):
        captured.update(row=services.invocation_row(invocation, early=True), payload=payload)
        raise Sent()

    with pytest.raises(Sent):
        services.invocation_start(
            key=key, user=user, owner=user.username, name=name, version=None, body=b'"x"',
            content_type="application/json", options=services.CallOptions(timeout=5),
            api_base="", before_hold=capture)
    return captured["row"], captured["payload"]


@pytest.fixture
def runs(monkeypatch):
    """The calls that reached the backend."""
    from execution.backends.local import LocalBackend

    reached, original = [], LocalBackend.invoke
    monkeypatch.setattr(LocalBackend, "invoke", lambda self, target, *args, **kwargs: (
        reached.append(target), original(self, target, *args, **kwargs))[1])
    return reached


@pytest.mark.parametrize("word", ["refused", None])
def test_a_call_with_no_admission_is_not_run_nor_written(probe, user, raw_key, builds_run,
                                                        settings, runs, word):
    """Refused: dropped at once. No word (its web process ended mid-admission): dropped at
    the end of the wait. Either way nothing reaches a runner and nothing is written; the
    word is taken."""
    settings.EXECUTION_EARLY_WAIT_SECONDS = 1.5
    row, payload = sent_early(user, raw_key, "probe")
    assert row["usage_hold"] is None
    if word == "refused":
        early_dispatch.refused(row["request_id"])
    started = time.monotonic()
    assert services.invocation_run(invocation_pk=None, payload=payload, row=row,
                                   request_id=row["request_id"], early=True) is None
    waited = time.monotonic() - started
    assert waited < 1 if word == "refused" else waited >= 1.5
    assert runs == [] and not Invocation.objects.exists() and not UsageRecord.objects.exists()
    assert not redis.Redis.from_url(settings.REDIS_URL).exists(
        f"algostore:admission:{row['request_id']}")


def test_a_call_delivered_again_is_read_by_its_request_id(probe, user, raw_key, builds_run,
                                                          runs, settings):
    """A message delivered again is never trusted for its row: an early one (no row id)
    finds its call by request id. Admitted, it runs; refused, it is dropped."""
    settings.EXECUTION_EARLY_WAIT_SECONDS = 1.5
    row, payload = sent_early(user, raw_key, "probe")
    early_dispatch.refused(row["request_id"])
    assert services.invocation_run(invocation_pk=None, payload=payload, row=None,
                                   request_id=row["request_id"], early=True) is None
    assert runs == []

    key = api_key_authenticate(raw=raw_key)
    invocation = services.invocation_admit(
        key=key, user=user, owner=user.username, name="probe", version=None, payload=payload,
        input_bytes=3, options=services.CallOptions(timeout=5))
    envelope = services.invocation_run(invocation_pk=None, payload=payload, row=None,
                                       request_id=str(invocation.request_id), early=True)
    assert envelope["result"] == "echo: x" and len(runs) == 1
    assert Invocation.objects.get(pk=invocation.pk).status == "succeeded"


def test_a_call_delivered_again_before_its_admission_is_written_waits_for_it(
        probe, user, raw_key, builds_run, runs):
    """Delivered again while its web process is still admitting it (a worker stopped and
    its messages restored): the row is not there yet; the worker waits for the word, then
    reads the row and runs the call, once."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def redelivered(request_id: str):
        try:
            return services.invocation_run(invocation_pk=None, payload=payload, row=None,
                                           request_id=request_id, early=True)
        finally:
            connections.close_all()

    key, pool, running = api_key_authenticate(raw=raw_key), ThreadPoolExecutor(1), []
    payload = {"content_type": "json", "data": "x"}

    def meanwhile(invocation, _payload):  # the message comes back before the row is written
        running.append(pool.submit(redelivered, str(invocation.request_id)))
        time.sleep(0.5)
        assert not running[0].done()  # it waits: no row, no word yet

    invocation, _ = services.invocation_start(
        key=key, user=user, owner=user.username, name="probe", version=None, body=b'"x"',
        content_type="application/json", options=services.CallOptions(timeout=5),
        api_base="", before_hold=meanwhile)
    early_dispatch.admitted(invocation)
    envelope = running[0].result(timeout=30)
    pool.shutdown()
    assert envelope["result"] == "echo: x" and len(runs) == 1
    assert Invocation.objects.get(pk=invocation.pk).status == "succeeded"
