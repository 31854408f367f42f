"""In a real browser: buy credits up to Stripe's page, get them once from a signed event,
see them on the statement; cap a key's monthly spending from the keys page."""
import pytest
import requests

from billing.models import CreditPurchase, LedgerTransaction
from marketplace import services
from marketplace.models import ApiKey
from tests.browser.conftest import log_in
from tests.billing.stripe_double import StripeDouble, checkout_completed, signed_event
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Browser-test-pass-phrase-7"
SECRET = "whsec_browser_test"


def test_buy_credits_up_to_the_stripe_redirect_and_get_them_once(page, live_server, settings):
    user = UserFactory(password=PASSWORD)
    base = live_server.url
    with StripeDouble() as stripe_api:
        settings.STRIPE_SECRET_KEY = "sk_test_browser"
        settings.STRIPE_WEBHOOK_SECRET = SECRET
        settings.STRIPE_API_BASE = stripe_api.url
        log_in(page, base, user, PASSWORD)
        assert page.get_by_test_id("dashboard-balance").inner_text() == "10,000"
        page.get_by_test_id("account-menu").click()
        page.get_by_role("group").get_by_role("link", name="Billing").click()
        assert page.get_by_test_id("balance").inner_text() == "10,000"
        page.get_by_test_id("buy-starter").click()
        page.wait_for_url(f"{stripe_api.url}/pay/cs_test_*")
        assert page.get_by_role("heading").inner_text() == "Stripe Checkout (test double)"
        purchase = CreditPurchase.objects.get()
        assert page.url == f"{stripe_api.url}/pay/{purchase.checkout_session_id}"
        assert stripe_api.requests[0]["form"]["success_url"].startswith(f"{base}/billing/bought/")

        # Stripe confirms the payment, twice (it retries): credited once.
        event = checkout_completed(purchase.checkout_session_id, purchase.amount_cents)
        for _ in range(2):
            payload, signature = signed_event(event, SECRET)
            response = requests.post(f"{base}/v1/billing/stripe/webhook", data=payload,
                                     headers={"Stripe-Signature": signature,
                                              "Content-Type": "application/json"}, timeout=30)
            assert response.status_code == 200
        assert LedgerTransaction.objects.filter(kind="purchase").count() == 1

        page.goto(f"{base}/billing/bought/?session_id={purchase.checkout_session_id}")
        assert "Your credits appear here" in page.get_by_role("status").inner_text()
        assert page.get_by_test_id("balance").inner_text() == "110,000"
        statement = page.get_by_test_id("statement").inner_text()
        assert "Credit pack: starter" in statement and "100,000" in statement


def test_cap_a_keys_monthly_spending_from_the_keys_page(page, live_server):
    user = UserFactory(password=PASSWORD)
    raw = services.api_key_create(created_by=user, name="capped from the page").raw
    key = ApiKey.objects.get(name="capped from the page")
    base = live_server.url
    log_in(page, base, user, PASSWORD)
    page.goto(f"{base}/account/keys/")
    page.get_by_test_id(f"cap-{key.prefix}").fill("12.5")
    page.get_by_test_id(f"cap-{key.prefix}").press("Enter")
    assert "capped at 12.5 credits a month" in page.get_by_role("status").inner_text()
    account = requests.get(f"{base}/v1/billing/account", headers={"Authorization": raw},
                           timeout=30).json()
    assert account["key"]["monthly_spend_cap_microcredits"] == 12_500_000
    assert page.get_by_test_id(f"cap-{key.prefix}").input_value() == "12.5"
    page.get_by_test_id(f"cap-{key.prefix}").fill("")
    page.get_by_test_id(f"cap-{key.prefix}").press("Enter")
    assert "no spending cap" in page.get_by_role("status").inner_text()
    key.refresh_from_db()
    assert key.monthly_spend_cap is None
