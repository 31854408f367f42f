"""row_update: the call path's single-row UPDATEs, on both databases."""
import uuid
from datetime import datetime, timezone

import pytest

from billing.models import Account
from execution.models import Invocation
from marketplace.row_update import row_update
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_sets_adds_and_only_where_the_condition_holds():
    account = Account.objects.get(user=UserFactory())
    assert row_update(Account, account.pk, add={"reserved": 5}) == 1
    assert row_update(Account, account.pk, add={"reserved": -2}, set={"holder_name": "x"}) == 1
    account.refresh_from_db()
    assert (account.reserved, account.holder_name) == (3, "x")
    assert row_update(Account, account.pk, set={"holder_name": "y"},
                      where={"kind": ("organization", "platform-grants")}) == 0
    assert row_update(Account, account.pk + 10_000, add={"reserved": 1}) == 0
    account.refresh_from_db()
    assert (account.reserved, account.holder_name) == (3, "x")


def test_json_datetimes_and_floats_are_stored_as_the_orm_stores_them():
    request_id = uuid.uuid4()
    call = Invocation.objects.create(request_id=request_id, trace_id=request_id,
                                     algorithm_path="a/b", version_text="1.0.0",
                                     input_content_type="json")
    finished = datetime(2026, 11, 27, 1, 2, 3, 456000, tzinfo=timezone.utc)
    envelope = {"result": {"k": [1, "é"]}, "metadata": {"content_type": "json"}}
    assert row_update(Invocation, call.pk, set={"status": "succeeded", "result": envelope,
                                                "finished_at": finished, "run_ms": 1.5},
                      where={"status": ("queued", "running")}) == 1
    assert row_update(Invocation, call.pk, set={"status": "failed"},
                      where={"status": ("queued", "running")}) == 0  # closed once
    call.refresh_from_db()
    assert (call.status, call.result, call.finished_at, call.run_ms) == (
        "succeeded", envelope, finished, 1.5)


def test_an_empty_in_matches_nothing_and_an_empty_update_is_refused():
    account = Account.objects.get(user=UserFactory())
    assert row_update(Account, account.pk, add={"reserved": 1}, where={"kind": ()}) == 0
    with pytest.raises(ValueError):
        row_update(Account, account.pk, where={"kind": "user"})
    account.refresh_from_db()
    assert account.reserved == 0
