"""Billing fixtures: an author with a priced algorithm, and a caller with a key."""
import pytest

from billing.models import Account
from marketplace import services as marketplace_services
from tests.execution.conftest import bundle_files, publish  # noqa: F401
from tests.factories import UserFactory

CREDIT = 1_000_000
ROYALTY = 2 * CREDIT


@pytest.fixture
def author(db):
    return UserFactory()


@pytest.fixture
def priced(author):
    """``author/probe``, published at a royalty of 2 credits a call."""
    return publish(author, "probe", bundle_files("probe"), runner_idle_seconds=60,
                   royalty_microcredits=ROYALTY)


@pytest.fixture
def caller(db):
    return UserFactory()


@pytest.fixture
def caller_key(caller):
    return marketplace_services.api_key_create(created_by=caller, name="caller").raw


def settled(calls=None) -> None:
    """Wait until ``calls`` (an Invocation queryset; every call by default) are closed (a
    sync call's close may trail its answer) and every finished call is in the ledger
    (settling is batched: at once when Celery is eager, a moment later on a real worker).
    A test that keeps a call open on purpose names the calls it waits for."""
    from billing.models import UsageRecord
    from tests.conftest import wait_closed, wait_for

    wait_closed(calls)
    wait_for(lambda: not UsageRecord.objects.filter(status="pending").exists(), timeout=60)


def balance(owner, calls=None) -> Account:
    """The owner's account, as it stands once ``calls`` are closed and every finished call
    is settled."""
    settled(calls)
    return Account.objects.get(user=owner)


def platform(kind: str) -> Account:
    return Account.objects.get(kind=kind)
