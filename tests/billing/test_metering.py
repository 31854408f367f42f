"""Every call is metered once: held before it runs, settled after, never past the balance."""
import math

import Algorithmia
import pytest
from Algorithmia.errors import AlgorithmException
from django.core.management import call_command
from django.test import Client as DjangoClient

from billing import services
from billing.models import Account, Entry, KeySpend, LedgerTransaction, UsageRecord
from execution import services as execution_services
from execution.models import Invocation
from marketplace import services as marketplace_services
from marketplace.services import api_key_authenticate
from tests.billing.conftest import CREDIT, ROYALTY, balance, platform, settled

GRANT = 10_000 * CREDIT
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def algo_client(live_server, caller_key, builds_run):
    client = Algorithmia.client(caller_key, api_address=live_server.url)
    yield client
    client.requestSession.close()


def test_a_new_account_starts_with_ten_thousand_free_credits(caller):
    account = balance(caller)
    assert (account.balance, account.reserved) == (GRANT, 0)
    grant = Entry.objects.get(account=account)
    assert grant.amount == GRANT and grant.transaction.kind == "grant"
    assert platform("platform-grants").balance == -GRANT * Account.objects.filter(
        kind="user").count()


def test_a_call_costs_the_royalty_plus_compute_and_the_author_earns_seventy_percent(
        priced, author, caller, algo_client):
    result = algo_client.algo(f"{author.username}/probe/0.1.0").pipe("hi").result
    assert result == "echo: hi"

    settled()  # (its close, which records its run time, may trail its answer)
    invocation = Invocation.objects.get(caller=caller)
    usage = UsageRecord.objects.get(request_id=invocation.request_id)
    compute = math.ceil(invocation.run_ms) * 1000  # 1 credit per core-second, per millisecond
    assert (usage.status, usage.royalty, usage.compute) == ("settled", ROYALTY, compute)
    assert balance(caller).balance == GRANT - ROYALTY - compute
    assert balance(caller).reserved == 0
    assert balance(author).balance == GRANT + ROYALTY * 70 // 100
    assert platform("platform-revenue").balance == ROYALTY * 30 // 100 + compute
    posted = LedgerTransaction.objects.get(kind="usage", request_id=invocation.request_id)
    assert sum(posted.entries.values_list("amount", flat=True)) == 0
    call_command("check_ledger")


def test_a_failed_call_is_not_billed_and_its_hold_is_released(priced, author, caller,
                                                              algo_client):
    with pytest.raises(AlgorithmException) as raised:
        algo_client.algo(f"{author.username}/probe").pipe({"action": "raise"})
    assert raised.value.error_type == "AlgorithmError"
    settled()
    usage = UsageRecord.objects.get(payer__user=caller)
    assert (usage.status, usage.royalty, usage.compute) == ("released", 0, 0)
    assert (balance(caller).balance, balance(caller).reserved) == (GRANT, 0)
    assert balance(author).balance == GRANT
    assert not LedgerTransaction.objects.filter(kind="usage").exists()
    call_command("check_ledger")


def test_authors_pay_no_royalty_on_their_own_algorithms(priced, author, live_server,
                                                        builds_run):
    key = marketplace_services.api_key_create(created_by=author, name="own").raw
    client = Algorithmia.client(key, api_address=live_server.url)
    assert client.algo(f"{author.username}/probe").pipe("me").result == "echo: me"
    settled()
    usage = UsageRecord.objects.get()
    assert usage.royalty == 0 and usage.compute > 0
    assert balance(author).balance == GRANT - usage.compute


def test_a_call_that_cannot_be_paid_gets_402_before_any_work(priced, author, caller,
                                                             caller_key, live_server):
    services.adjustment_create(account=balance(caller), amount=-(GRANT - CREDIT),
                               reason="test: leave one credit", actor=author)
    import requests

    response = requests.post(f"{live_server.url}/v1/algo/{author.username}/probe",
                             json="hi", headers={"Authorization": caller_key}, timeout=30)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["error_type"] == "PaymentRequired"
    assert "Not enough credits" in error["message"] and "1 available" in error["message"]
    assert not Invocation.objects.filter(caller=caller).exists()  # nothing was recorded or run
    assert not UsageRecord.objects.exists()
    assert (balance(caller).balance, balance(caller).reserved) == (CREDIT, 0)


def test_a_short_timeout_holds_less_so_a_small_balance_can_still_call(
        priced, author, caller, caller_key, live_server, builds_run):
    # 3 credits: the royalty (2) plus one second of compute (1) fits; 300 seconds would not.
    services.adjustment_create(account=balance(caller), amount=-(GRANT - 3 * CREDIT),
                               reason="test", actor=author)
    import requests

    url = f"{live_server.url}/v1/algo/{author.username}/probe"
    assert requests.post(url, json="x", headers={"Authorization": caller_key},
                         timeout=30).status_code == 402
    response = requests.post(url + "?timeout=1", json="x",
                             headers={"Authorization": caller_key}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "echo: x"
    assert 0 <= balance(caller).balance < CREDIT
    call_command("check_ledger")


def test_a_keys_monthly_cap_refuses_calls_past_it_with_402(priced, author, caller,
                                                           live_server, builds_run):
    issued = marketplace_services.api_key_create(created_by=caller, name="capped",
                                                 monthly_spend_cap=5 * CREDIT)
    import requests

    url = f"{live_server.url}/v1/algo/{author.username}/probe?timeout=1"
    headers = {"Authorization": issued.raw}
    assert requests.post(url, json="a", headers=headers, timeout=30).status_code == 200
    settled()
    spend = KeySpend.objects.get(key=issued.key)
    first_cost = UsageRecord.objects.get().total
    assert (spend.spent, spend.reserved) == (first_cost, 0)
    # 5 - 2.00x leaves less than the next call's 3-credit hold: refused, with the reason.
    refused = requests.post(url, json="b", headers=headers, timeout=30)
    assert refused.status_code == 402
    assert "monthly spending cap is 5 credits" in refused.json()["error"]["message"]
    assert UsageRecord.objects.count() == 1
    # The account could pay; only the key's cap said no. Another key is not capped.
    other = marketplace_services.api_key_create(created_by=caller, name="free").raw
    assert requests.post(url, json="c", headers={"Authorization": other},
                         timeout=30).status_code == 200
    call_command("check_ledger")


def test_a_capped_keys_call_the_account_cannot_pay_leaves_no_hold_on_the_cap(
        priced, author, caller, live_server, builds_run):
    """The cap's hold is taken before the payer's: when the payer's is refused, the cap's
    must go with it (else the key's cap would shrink by every refused call)."""
    import requests

    url = f"{live_server.url}/v1/algo/{author.username}/probe?timeout=1"
    # A first call (with another key) makes both accounts known to the serving process,
    # so the refused calls below take the call path's quickest way.
    other = marketplace_services.api_key_create(created_by=caller, name="other").raw
    assert requests.post(url, json="0", headers={"Authorization": other},
                         timeout=30).status_code == 200
    settled()
    Invocation.objects.all().delete()
    UsageRecord.objects.all().delete()
    issued = marketplace_services.api_key_create(created_by=caller, name="capped",
                                                 monthly_spend_cap=100 * CREDIT)
    services.adjustment_create(account=balance(caller),
                               amount=-(balance(caller).balance - CREDIT),
                               reason="test: leave one credit", actor=author)
    for _ in range(2):
        refused = requests.post(url, json="a", headers={"Authorization": issued.raw},
                                timeout=30)
        assert refused.status_code == 402
        assert "Not enough credits" in refused.json()["error"]["message"]
    # Nothing held on the cap (its month's row, made for the call, went with it too).
    assert list(KeySpend.objects.filter(key=issued.key).values_list("reserved", "spent")) in (
        [], [(0, 0)])
    assert not Invocation.objects.exists() and not UsageRecord.objects.exists()
    assert (balance(caller).balance, balance(caller).reserved) == (CREDIT, 0)
    services.adjustment_create(account=balance(caller), amount=10 * CREDIT, reason="refill",
                               actor=author)
    assert requests.post(url, json="b", headers={"Authorization": issued.raw},
                         timeout=30).status_code == 200
    settled()
    assert KeySpend.objects.get(key=issued.key).reserved == 0
    call_command("check_ledger")


def test_settling_twice_charges_once(priced, author, caller, caller_key, builds_run):
    key = api_key_authenticate(raw=caller_key)
    payload = {"content_type": "text", "data": "once"}
    invocation = execution_services.invocation_admit(
        key=key, user=caller, owner=author.username, name="probe", version=None,
        payload=payload, input_bytes=4, options=execution_services.CallOptions(timeout=5))
    execution_services.invocation_run(invocation_pk=invocation.pk, payload=payload)
    execution_services.invocation_run(invocation_pk=invocation.pk, payload=payload)  # redelivered
    settled()  # by the billing worker (at once when Celery is eager)
    invocation.refresh_from_db()
    services.usage_finish(invocation=invocation, succeeded=True)  # a late duplicate close
    assert services.usage_settle_pending() == 0  # it changed nothing: nothing to settle
    assert LedgerTransaction.objects.filter(kind="usage").count() == 1
    usage = UsageRecord.objects.get()
    assert balance(caller).balance == GRANT - usage.total
    assert services.usage_reconcile() == 0
    call_command("check_ledger")


def test_a_tree_whose_root_failed_through_the_platform_is_refunded(priced, author, caller,
                                                                   caller_key, builds_run):
    """The children ran and were billed; the root then failed through the platform's fault:
    the caller gets every credit back, paid by the platform, and the authors keep theirs."""
    key = api_key_authenticate(raw=caller_key)
    payload = {"content_type": "text", "data": "root"}
    root = execution_services.invocation_admit(
        key=key, user=caller, owner=author.username, name="probe", version=None,
        payload=payload, input_bytes=4, options=execution_services.CallOptions(timeout=5))
    derived = marketplace_services.api_key_create_derived(parent=key, name="child",
                                                          lifetime_seconds=60)
    Invocation.objects.filter(pk=root.pk).update(derived_key=derived.key)
    child = execution_services.invocation_admit(
        key=derived.key, user=caller, owner=author.username, name="probe", version=None,
        payload=payload, input_bytes=4, options=execution_services.CallOptions(timeout=5))
    assert child.parent_id == root.pk
    execution_services.invocation_run(invocation_pk=child.pk, payload=payload)
    children = Invocation.objects.filter(pk=child.pk)  # (the root stays open until below)
    settled(children)  # the billing worker's turn (at once when Celery is eager)
    charged = UsageRecord.objects.get(request_id=child.request_id)
    assert charged.status == "settled"
    assert balance(caller, children).balance == GRANT - charged.total

    execution_services.invocation_finish(invocation=root, error_type="InternalError",
                                         error_message="lost", platform_fault=True)
    charged.refresh_from_db()
    assert charged.status == "refunded"
    assert UsageRecord.objects.get(request_id=root.request_id).status == "released"
    assert (balance(caller).balance, balance(caller).reserved) == (GRANT, 0)
    assert balance(author).balance == GRANT + ROYALTY * 70 // 100
    refund = LedgerTransaction.objects.get(kind="refund")
    assert refund.request_id == child.request_id and "platform's fault" in refund.memo
    call_command("check_ledger")


def test_check_ledger_fails_when_the_books_are_off(priced, author, caller, algo_client):
    from django.core.management.base import CommandError

    algo_client.algo(f"{author.username}/probe").pipe("x")
    settled()
    call_command("check_ledger")
    Account.objects.filter(user=caller).update(balance=GRANT)  # as if someone edited it
    with pytest.raises(CommandError, match="1 problem"):
        call_command("check_ledger")


def test_an_organizations_key_is_paid_by_the_organization(priced, author, caller, live_server,
                                                          builds_run):
    import requests

    org = marketplace_services.organization_create(actor=caller, name="acme_labs")
    org_account = Account.objects.get(organization=org)
    assert (org_account.kind, org_account.balance) == ("organization", 0)  # no free credits
    key = marketplace_services.api_key_create(created_by=caller, name="org",
                                              organization=org).raw
    url = f"{live_server.url}/v1/algo/{author.username}/probe?timeout=1"
    refused = requests.post(url, json="x", headers={"Authorization": key}, timeout=30)
    assert refused.status_code == 402 and "acme_labs has 0 available" in refused.text
    services.adjustment_create(account=org_account, amount=10 * CREDIT, reason="funding",
                               actor=author)
    assert requests.post(url, json="x", headers={"Authorization": key},
                         timeout=30).status_code == 200
    settled()
    usage = UsageRecord.objects.get()
    assert usage.payer == org_account
    org_account.refresh_from_db()
    assert org_account.balance == 10 * CREDIT - usage.total
    assert balance(caller).balance == GRANT  # the member's own account is untouched
    call_command("check_ledger")


def test_the_database_refuses_a_second_charge_for_a_call(db):
    import uuid

    from django.db import IntegrityError, transaction

    request_id = uuid.uuid4()
    LedgerTransaction.objects.create(kind="usage", request_id=request_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerTransaction.objects.create(kind="usage", request_id=request_id)
    LedgerTransaction.objects.create(kind="refund", request_id=request_id)  # refunds may follow


def test_keys_made_by_a_capped_key_spend_out_of_its_cap(priced, author, caller, live_server,
                                                        builds_run):
    import requests

    parent = marketplace_services.api_key_create(created_by=caller, name="parent",
                                                 monthly_spend_cap=5 * CREDIT)
    child = marketplace_services.api_key_create_from_key(
        parent=parent.key, name="child", scopes=marketplace_services.KeyScopes(
            algo_patterns=["algo://*"], can_manage=False))
    assert child.key.monthly_spend_cap == 5 * CREDIT  # inherited
    url = f"{live_server.url}/v1/algo/{author.username}/probe?timeout=1"
    assert requests.post(url, json="a", headers={"Authorization": child.raw},
                         timeout=30).status_code == 200
    settled()
    usage = UsageRecord.objects.get()
    assert usage.cap_keys == sorted([parent.key.pk, child.key.pk])
    assert KeySpend.objects.get(key=parent.key).spent == usage.total  # the parent's budget too
    # So the parent itself has less left: 5 - 2.00x leaves less than a 3-credit hold.
    refused = requests.post(url, json="b", headers={"Authorization": parent.raw}, timeout=30)
    assert refused.status_code == 402 and "cap is 5 credits" in refused.text
    call_command("check_ledger")


def test_a_cap_set_during_the_month_counts_what_the_key_spent_before_it(
        priced, author, caller, live_server, builds_run):
    """A monthly cap is the month's: set on the 20th, it counts the key's calls since the
    1st, and those of the keys made from it, but not the account's other keys'."""
    import requests

    from datetime import timedelta

    from django.utils import timezone

    key = marketplace_services.api_key_create(created_by=caller, name="capped later")
    # Made from it: one for good, one that expires (and cannot manage keys) as a key for a
    # contractor would.
    made = [marketplace_services.api_key_create_from_key(
        parent=key.key, name=f"made from it {n}", expires_at=expires,
        scopes=marketplace_services.KeyScopes(algo_patterns=["algo://*"], can_manage=False))
        for n, expires in enumerate([None, timezone.now() + timedelta(days=30)])]
    other = marketplace_services.api_key_create(created_by=caller, name="another key")
    url = f"{live_server.url}/v1/algo/{author.username}/probe?timeout=1"
    for raw in (key.raw, *(issued.raw for issued in made), other.raw):
        assert requests.post(url, json="a", headers={"Authorization": raw},
                             timeout=30).status_code == 200
    settled()
    keys_spend = sum(usage.total for usage in UsageRecord.objects.filter(
        invocation__api_key__in=[key.key, *(issued.key for issued in made)]))
    assert keys_spend > 3 * ROYALTY and UsageRecord.objects.count() == 4
    assert not KeySpend.objects.exists()  # nothing followed the uncapped calls

    # Room for 2 credits more: less than a call's 3-credit hold.
    marketplace_services.api_key_set_spend_cap(key=key.key, cap=keys_spend + 2 * CREDIT,
                                               actor=caller)
    spend = KeySpend.objects.get(key=key.key)
    assert (spend.spent, spend.carried, spend.reserved) == (0, keys_spend, 0)
    for raw in (key.raw, *(issued.raw for issued in made)):
        refused = requests.post(url, json="b", headers={"Authorization": raw}, timeout=30)
        assert refused.status_code == 402, refused.text
        assert "monthly spending cap" in refused.json()["error"]["message"]
    account = requests.get(f"{live_server.url}/v1/billing/account",
                           headers={"Authorization": key.raw}, timeout=30).json()
    assert account["key"]["spent_this_month_microcredits"] == keys_spend
    # Lifted, a call made, then set again higher: that call is counted too, and the key runs.
    marketplace_services.api_key_set_spend_cap(key=key.key, cap=None, actor=caller)
    assert requests.post(url, json="uncapped", headers={"Authorization": key.raw},
                         timeout=30).status_code == 200
    settled()
    while_lifted = UsageRecord.objects.get(request_id=Invocation.objects.filter(
        api_key=key.key).latest("created_at").request_id).total
    keys_spend += while_lifted
    # Uncapped, the account still tells the month's spend, that call included; and a key
    # never capped tells its own (only its own).
    for raw, spend in ((key.raw, keys_spend), (other.raw, UsageRecord.objects.get(
            invocation__api_key=other.key).total)):
        account = requests.get(f"{live_server.url}/v1/billing/account",
                               headers={"Authorization": raw}, timeout=30).json()
        assert account["key"]["monthly_spend_cap_microcredits"] is None
        assert account["key"]["spent_this_month_microcredits"] == spend
    # The keys page shows the same beside each key's cap.
    page = DjangoClient()
    page.force_login(caller)
    rows = page.get("/account/keys/").content.decode()
    for issued, spend in ((key, keys_spend), (other, UsageRecord.objects.get(
            invocation__api_key=other.key).total)):
        assert (f'<td data-testid="spent-{issued.key.prefix}">{services.usage.credits(spend)}'
                "</td>") in rows
    marketplace_services.api_key_set_spend_cap(key=key.key, cap=keys_spend + 10 * CREDIT,
                                               actor=caller)
    assert KeySpend.objects.get(key=key.key).carried == keys_spend
    assert requests.post(url, json="c", headers={"Authorization": key.raw},
                         timeout=30).status_code == 200
    settled()
    last = UsageRecord.objects.get(request_id=Invocation.objects.filter(
        api_key=key.key).latest("created_at").request_id)
    spend = KeySpend.objects.get(key=key.key)  # the capped call's charge followed as ever
    assert (spend.spent, spend.carried, spend.reserved) == (last.total, keys_spend, 0)
    call_command("check_ledger")


def test_a_402_for_an_author_without_an_account_leaves_nothing_behind(priced, author, caller,
                                                                     caller_key, live_server,
                                                                     builds_run):
    """The author's account is opened inside the call's transaction; when the call is then
    refused, nothing of it may be remembered (a later call would point at a missing row)."""
    import requests

    # The grant stays in the books under an archived account ...
    Account.objects.filter(user=author).update(user=None, holder_name="archived")  # ... but
    # the author has no account now, as a user from before billing would not.
    services.adjustment_create(account=balance(caller), amount=-GRANT, reason="empty",
                               actor=author)
    url = f"{live_server.url}/v1/algo/{author.username}/probe?timeout=1"
    assert requests.post(url, json="x", headers={"Authorization": caller_key},
                         timeout=30).status_code == 402
    assert not Account.objects.filter(user=author).exists()  # rolled back with the call
    services.adjustment_create(account=balance(caller), amount=10 * CREDIT, reason="refill",
                               actor=author)
    response = requests.post(url, json="x", headers={"Authorization": caller_key}, timeout=30)
    assert response.status_code == 200, response.text
    settled()
    assert Account.objects.get(user=author).balance == GRANT + ROYALTY * 70 // 100


def test_a_key_without_the_manage_scope_cannot_read_the_account(caller, live_server):
    import requests

    issued = marketplace_services.api_key_create(
        created_by=caller, name="calls only",
        scopes=marketplace_services.KeyScopes(algo_patterns=["algo://*"], can_manage=False))
    response = requests.get(f"{live_server.url}/v1/billing/account",
                            headers={"Authorization": issued.raw}, timeout=30)
    assert response.status_code == 403 and response.json()["error"]["error_type"] == "AuthError"
