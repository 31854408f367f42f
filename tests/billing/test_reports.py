"""What people see of the money: statements (one charge per tree), earnings, CSV, the price
quote, the account and usage APIs, the operators' dashboard."""
import csv
import math
import datetime
import io

import Algorithmia
import pytest
import requests
from django.urls import reverse

from billing.models import Account, LedgerTransaction, UsageRecord
from execution.models import Invocation
from marketplace import services as marketplace_services
from marketplace.models import AuditEvent
from tests.billing.conftest import CREDIT, ROYALTY, balance, settled
from tests.conftest import wait_closed
from tests.execution.conftest import publish
from tests.execution.test_composition import demo_bundle
from tests.factories import UserFactory

GRANT = 10_000 * CREDIT
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def third_party_seefood(live_server, builds_run):
    """SeeFood by one author calling a fruit classifier by another; a third user calls it."""
    chef, grower, diner = UserFactory(), UserFactory(), UserFactory()
    publish(grower, "fruit", demo_bundle("fruit"), royalty_microcredits=3 * CREDIT)
    publish(grower, "vegetable", demo_bundle("vegetable"), royalty_microcredits=3 * CREDIT)
    publish(chef, "seefood", demo_bundle("seefood"), pipeline_enabled=True,
            royalty_microcredits=5 * CREDIT)
    key = marketplace_services.api_key_create(created_by=diner, name="diner").raw
    client = Algorithmia.client(key, api_address=live_server.url)
    yield chef, grower, diner, client
    client.requestSession.close()


def test_seefood_for_a_third_user_is_one_charge_and_each_author_earns_70_percent(
        client, third_party_seefood):
    chef, grower, diner, algo = third_party_seefood
    answer = algo.algo(f"{chef.username}/seefood").pipe({"food": "banana",
                                                         "owner": grower.username}).result
    assert answer["verdict"] == "fruit"
    settled()
    root = Invocation.objects.get(algorithm_path=f"{chef.username}/seefood")
    child = Invocation.objects.get(parent=root)
    usages = {u.algorithm_path: u for u in UsageRecord.objects.filter(trace_id=root.trace_id)}
    assert set(usages) == {f"{chef.username}/seefood", f"{grower.username}/fruit"}
    assert all(u.status == "settled" and u.payer.user == diner for u in usages.values())
    tree_cost = sum(u.total for u in usages.values())
    assert tree_cost == 8 * CREDIT + sum(u.compute for u in usages.values())
    assert balance(diner).balance == GRANT - tree_cost

    # The diner's statement: one line for the tree, for the whole amount.
    client.force_login(diner)
    page = client.get(reverse("billing"))
    lines = [line for line in page.context["statement"] if line.kind == "Algorithm call"]
    assert len(lines) == 1
    assert (lines[0].amount, lines[0].calls) == (-tree_cost, 2)
    assert lines[0].description == (f"{chef.username}/seefood/0.1.0 (and 1 call it made)")
    assert "2 calls in this tree" in page.content.decode()

    # Each author's earnings: 70% of their own royalty, on their own version.
    for author, name, royalty in ((chef, "seefood", 5), (grower, "fruit", 3)):
        client.force_login(author)
        earnings = client.get(reverse("billing")).context["earnings"]
        assert [(row["algorithm"], row["version"], row["calls"], row["earned"])
                for row in earnings] == [(f"{author.username}/{name}", "0.1.0", 1,
                                          royalty * CREDIT * 70 // 100)]
        assert balance(author).balance == GRANT + royalty * CREDIT * 70 // 100
        # On their statement it is an earning, not "Algorithm call" with a positive amount.
        statement = client.get(reverse("billing")).context["statement"]
        assert [(line.kind, line.amount) for line in statement if line.kind != "Free credits"] \
            == [("Royalty earned", royalty * CREDIT * 70 // 100)]
    assert child.status == "succeeded"


def test_usage_and_earnings_export_as_csv(client, priced, author, caller, caller_key,
                                         live_server, builds_run):
    for text in ("a", "b"):
        requests.post(f"{live_server.url}/v1/algo/{author.username}/probe?timeout=2",
                      json=text, headers={"Authorization": caller_key}, timeout=30)
    settled()
    client.force_login(caller)
    usage = list(csv.reader(io.StringIO(client.get(reverse("billing-usage-csv"))
                                        .content.decode())))
    total = sum(u.total for u in UsageRecord.objects.all())
    today = datetime.date.today().isoformat()
    assert usage[0] == ["day", "algorithm", "calls", "royalty_microcredits",
                        "compute_microcredits", "total_microcredits"]
    assert usage[1][:4] == [today, f"{author.username}/probe", "2", str(2 * ROYALTY)]
    assert int(usage[1][5]) == total
    client.force_login(author)
    earned = list(csv.reader(io.StringIO(client.get(reverse("billing-earnings-csv"))
                                         .content.decode())))
    assert earned[1] == [today, f"{author.username}/probe", "0.1.0", "2",
                         str(2 * ROYALTY * 70 // 100)]
    page = client.get(reverse("billing")).content.decode()
    assert 'aria-label="Royalties earned per day"' in page and "<rect" in page


def test_the_price_quote_uses_measured_run_times(priced, author, caller_key, live_server,
                                                 builds_run):
    url = f"{live_server.url}/v1/algorithms/{author.username}/probe/versions/0.1.0/price"
    headers = {"Authorization": caller_key}
    before = requests.get(url, headers=headers, timeout=30).json()
    assert before["royalty_microcredits"] == ROYALTY
    assert before["compute_microcredits_per_second"] == CREDIT
    assert before["expected_cost_microcredits"] is None and before["measured_calls"] == 0
    assert before["max_cost_microcredits"] == ROYALTY + 300 * CREDIT
    requests.post(f"{live_server.url}/v1/algo/{author.username}/probe?timeout=2", json="q",
                  headers=headers, timeout=30)
    wait_closed()  # (its close, which records its run time, may trail its answer)
    after = requests.get(url, headers=headers, timeout=30).json()
    run_ms = Invocation.objects.get().run_ms
    assert after["measured_calls"] == 1
    assert after["expected_run_ms"] == run_ms  # the median of one measured call
    assert after["expected_cost_microcredits"] == ROYALTY + math.ceil(run_ms) * 1000
    missing = requests.get(url.replace("/probe/", "/nothing/"), headers=headers, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["error_type"] == "NotFound"


def test_a_private_versions_price_is_404_to_others(author, caller_key, live_server):
    publish(author, "secretive", {"src/secretive.py": "from Algorithmia import ADK\n"
                                  "ADK(lambda x: x).init()\n"}, callability="private")
    response = requests.get(f"{live_server.url}/v1/algorithms/{author.username}/secretive/"
                            "versions/0.1.0/price", headers={"Authorization": caller_key},
                            timeout=30)
    assert response.status_code == 404


def test_the_account_api_shows_the_balance_and_the_keys_cap(caller, live_server):
    issued = marketplace_services.api_key_create(created_by=caller, name="k",
                                                 monthly_spend_cap=7 * CREDIT)
    body = requests.get(f"{live_server.url}/v1/billing/account",
                        headers={"Authorization": issued.raw}, timeout=30).json()
    assert body == {"account": caller.username, "account_type": "user",
                    "balance_microcredits": GRANT, "reserved_microcredits": 0,
                    "available_microcredits": GRANT,
                    "key": {"id": issued.key.prefix, "monthly_spend_cap_microcredits": 7 * CREDIT,
                            "spent_this_month_microcredits": 0}}


def test_a_keys_cap_is_set_over_the_api_by_the_key_that_made_it_and_audited(caller,
                                                                             live_server):
    maker = marketplace_services.api_key_create(created_by=caller, name="maker")
    made = requests.post(f"{live_server.url}/v1/keys",
                         json={"name": "made", "scopes": {"manage": True}},
                         headers={"Authorization": maker.raw}, timeout=30).json()
    url = f"{live_server.url}/v1/keys/{made['id']}"
    response = requests.patch(url, json={"monthly_spend_cap_microcredits": 42 * CREDIT},
                              headers={"Authorization": maker.raw}, timeout=30)
    assert response.status_code == 200
    assert response.json()["monthly_spend_cap_microcredits"] == 42 * CREDIT
    event = AuditEvent.objects.get(action="api_key.spend_cap")
    assert event.data == {"before": None, "after": 42 * CREDIT}
    for bad_cap in (-1, 10 ** 19):
        bad = requests.patch(url, json={"monthly_spend_cap_microcredits": bad_cap},
                             headers={"Authorization": maker.raw}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["error_type"] == "InputError"

    # The capped key cannot lift its own cap, nor its maker's; keys it makes inherit it.
    own = requests.patch(url, json={"monthly_spend_cap_microcredits": None},
                         headers={"Authorization": made["key"]}, timeout=30)
    assert own.status_code == 403 and "its own spending cap" in own.json()["error"]["message"]
    up = requests.patch(f"{live_server.url}/v1/keys/{maker.key.prefix}",
                        json={"monthly_spend_cap_microcredits": 1},
                        headers={"Authorization": made["key"]}, timeout=30)
    assert up.status_code in (403, 404)
    child = requests.post(f"{live_server.url}/v1/keys", json={"name": "child"},
                          headers={"Authorization": made["key"]}, timeout=30).json()
    assert child["monthly_spend_cap_microcredits"] == 42 * CREDIT
    # Asking for a higher cap is refused, as changing one to it is (it was quietly lowered).
    higher = requests.post(f"{live_server.url}/v1/keys",
                           json={"name": "greedy", "monthly_spend_cap_microcredits": 50 * CREDIT},
                           headers={"Authorization": made["key"]}, timeout=30)
    assert higher.status_code == 403 and "cannot have a higher cap" in higher.json()[
        "error"]["message"]
    lower = requests.post(f"{live_server.url}/v1/keys",
                          json={"name": "modest", "monthly_spend_cap_microcredits": 7 * CREDIT},
                          headers={"Authorization": made["key"]}, timeout=30)
    assert lower.status_code == 201 and lower.json()["monthly_spend_cap_microcredits"] == 7 * CREDIT
    assert AuditEvent.objects.filter(action="api_key.spend_cap").count() == 1


def test_the_admin_usage_reports_work_with_the_official_client_for_admin_keys_only(
        priced, author, caller, caller_key, live_server, builds_run):
    requests.post(f"{live_server.url}/v1/algo/{author.username}/probe?timeout=2", json="u",
                  headers={"Authorization": caller_key}, timeout=30)
    requests.post(f"{live_server.url}/v1/algo/{author.username}/probe?timeout=2",
                  json={"action": "raise"}, headers={"Authorization": caller_key}, timeout=30)
    wait_closed()
    staff = UserFactory(is_staff=True)
    admin_key = marketplace_services.api_key_create(created_by=staff, name="ops").raw
    admin = Algorithmia.client(admin_key, api_address=live_server.url)
    # The generated client declares no authentication for these three operations, so the key
    # goes in as a default header (the generated ApiClient's own way to add one).
    admin.manageApi.api_client.set_default_header("Authorization", admin_key)
    today = datetime.date.today()
    full = admin.manageApi.get_full_usage(today, today, 10)
    assert len(full.results) == 1 and full.next_marker is None
    row = full.results[0]
    assert (row.algorithm_called, row.algorithm_version, row.algorithm_owner, row.caller,
            row.total_calls, row.total_errors) == (f"{author.username}/probe", "0.1.0",
                                                   author.username, caller.username, "2", 1)
    users = admin.manageApi.get_user_usage_result(today, today, 10, user=[caller.username])
    assert [(r.caller, r.total_calls) for r in users.results] == [(caller.username, "2")]
    algos = admin.manageApi.get_algorithm_usage_result(today, today, 1)
    assert algos.results[0].total_calls == "2" and algos.next_marker is None
    denied = requests.get(f"{live_server.url}/v1/admin/usage",
                          params={"start_date": today, "end_date": today, "page_size": 10},
                          headers={"Authorization": caller_key}, timeout=30)
    assert denied.status_code == 403 and denied.json()["error"]["error_type"] == "AuthError"


def test_the_operations_page_is_for_staff_and_posts_audited_adjustments(client, caller):
    client.force_login(caller)
    assert client.get(reverse("billing-operations")).status_code == 302  # to the admin login
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("billing-operations"))
    assert page.status_code == 200 and "The books are sound" in page.content.decode()
    response = client.post(reverse("billing-adjust"), {
        "account": caller.username, "credits": "25.5", "reason": "Goodwill: outage on Monday"},
        follow=True)
    assert "Adjusted" in response.content.decode()
    assert balance(caller).balance == GRANT + 25_500_000
    posted = LedgerTransaction.objects.get(kind="adjustment")
    assert (posted.memo, posted.created_by) == ("Goodwill: outage on Monday", staff)
    event = AuditEvent.objects.get(action="billing.adjustment")
    assert event.data["microcredits"] == 25_500_000 and event.actor == staff
    overdraw = client.post(reverse("billing-adjust"), {
        "account": caller.username, "credits": "-20000", "reason": "too much"}, follow=True)
    assert "below zero" in overdraw.content.decode()
    no_reason = client.post(reverse("billing-adjust"), {
        "account": caller.username, "credits": "1", "reason": " "}, follow=True)
    assert "needs a reason" in no_reason.content.decode()
    assert LedgerTransaction.objects.filter(kind="adjustment").count() == 1
    assert Account.objects.get(user=caller).balance == GRANT + 25_500_000
