"""Buying credits: Stripe Checkout through the real ``stripe`` library, and signed webhooks."""
import pytest
from django.urls import reverse

from billing.models import CreditPurchase, LedgerTransaction, StripeEvent
from tests.billing.conftest import CREDIT, balance
from tests.billing.stripe_double import (StripeDouble, charge_refunded, checkout_completed,
                                         signed_event)

GRANT = 10_000 * CREDIT
SECRET = "whsec_test_0123456789abcdef"
pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_on(settings):
    with StripeDouble() as double:
        settings.STRIPE_SECRET_KEY = "sk_test_algostore"
        settings.STRIPE_WEBHOOK_SECRET = SECRET
        settings.STRIPE_API_BASE = double.url
        yield double


def _buy(client, user, pack="starter"):
    client.force_login(user)
    return client.post(reverse("billing-buy"), {"pack": pack})


def _post_event(client, event, secret=SECRET):
    payload, signature = signed_event(event, secret)
    return client.post(reverse("stripe-webhook"), data=payload, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=signature)


def test_buying_a_pack_creates_a_checkout_session_and_redirects_to_it(client, user, stripe_on):
    response = _buy(client, user)
    purchase = CreditPurchase.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{stripe_on.url}/pay/{purchase.checkout_session_id}"
    sent = stripe_on.requests[0]
    assert sent["path"] == "/v1/checkout/sessions"
    assert sent["authorization"] == "Bearer sk_test_algostore"
    form = sent["form"]
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "1000"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["client_reference_id"] == str(balance(user).pk)
    assert form["success_url"].startswith("http://testserver/billing/bought/")
    assert (purchase.status, purchase.amount_cents, purchase.microcredits) == (
        "pending", 1000, 100_000 * CREDIT)
    assert balance(user).balance == GRANT  # nothing is credited before Stripe says it is paid
    # Stripe sends the buyer back: thanked for their own checkout, not for any session id.
    back = client.get(f"{reverse('billing-bought')}?session_id={purchase.checkout_session_id}",
                      follow=True).content.decode()
    assert "Thank you." in back
    for other in ("cs_made_up", ""):
        page = client.get(f"{reverse('billing-bought')}?session_id={other}",
                          follow=True).content.decode()
        assert "There is no purchase of yours with that checkout session." in page
        assert "Thank you." not in page


def test_a_signed_completed_checkout_credits_once_even_when_replayed(client, user, stripe_on):
    _buy(client, user)
    purchase = CreditPurchase.objects.get()
    event = checkout_completed(purchase.checkout_session_id, 1000)
    first = _post_event(client, event)
    assert first.status_code == 200
    assert first.json()["outcome"].startswith("credited 100000000000 microcredits")
    replay = _post_event(client, event)  # Stripe retries; an attacker replays
    assert replay.status_code == 200 and replay.json()["outcome"].startswith("duplicate")
    assert balance(user).balance == GRANT + 100_000 * CREDIT
    assert LedgerTransaction.objects.filter(kind="purchase").count() == 1
    assert StripeEvent.objects.get().event_id == event["id"]
    purchase.refresh_from_db()
    assert (purchase.status, purchase.payment_intent_id) == ("paid", "pi_test_1")


def test_a_bad_signature_gets_400_and_changes_nothing(client, user, stripe_on):
    _buy(client, user)
    purchase = CreditPurchase.objects.get()
    response = _post_event(client, checkout_completed(purchase.checkout_session_id, 1000),
                           secret="whsec_wrong")
    assert response.status_code == 400
    assert response.json()["error"]["error_type"] == "InputError"
    assert "signature" in response.json()["error"]["message"]
    unsigned = client.post(reverse("stripe-webhook"), data=b"{}", content_type="application/json")
    assert unsigned.status_code == 400
    assert balance(user).balance == GRANT
    assert not StripeEvent.objects.exists()
    assert CreditPurchase.objects.get().status == "pending"


def test_other_event_types_are_acknowledged_and_not_stored(client, stripe_on):
    event = {"id": "evt_other", "object": "event", "type": "customer.created",
             "data": {"object": {"id": "cus_1", "object": "customer"}}}
    response = _post_event(client, event)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored: customer.created"
    assert not StripeEvent.objects.exists()


def test_a_wrong_amount_or_unknown_session_credits_nothing(client, user, stripe_on):
    _buy(client, user)
    purchase = CreditPurchase.objects.get()
    assert "amount mismatch" in _post_event(
        client, checkout_completed(purchase.checkout_session_id, 1)).json()["outcome"]
    assert _post_event(client, checkout_completed("cs_test_unknown", 1000)).json()[
        "outcome"] == "unknown checkout session"
    assert balance(user).balance == GRANT


def test_a_refund_takes_the_credits_back(client, user, stripe_on):
    _buy(client, user)
    purchase = CreditPurchase.objects.get()
    _post_event(client, checkout_completed(purchase.checkout_session_id, 1000))
    half = _post_event(client, charge_refunded("pi_test_1", 500))
    assert half.json()["outcome"] == f"removed {50_000 * CREDIT} microcredits"
    assert balance(user).balance == GRANT + 50_000 * CREDIT
    _post_event(client, charge_refunded("pi_test_1", 1000))
    assert balance(user).balance == GRANT
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_cents) == ("refunded", 1000)


def test_with_no_stripe_keys_the_buy_button_explains_payments_are_off(client, user, settings):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(user)
    page = client.get(reverse("billing")).content.decode()
    assert 'data-testid="payments-off"' in page and "Payments are off" in page
    # How to turn them on is for the operator, not every user: settings are not named.
    assert "STRIPE_SECRET_KEY" not in page and 'data-testid="payments-setup"' not in page
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    assert "STRIPE_SECRET_KEY" in client.get(reverse("billing")).content.decode()
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    response = client.post(reverse("billing-buy"), {"pack": "starter"}, follow=True)
    assert "Payments are off on this Algostore" in response.content.decode()
    assert not CreditPurchase.objects.exists()
    settings.STRIPE_WEBHOOK_SECRET = ""
    hook = client.post(reverse("stripe-webhook"), data=b"{}", content_type="application/json")
    assert hook.status_code == 503 and "off" in hook.json()["error"]["message"]


def test_a_refund_that_arrives_before_the_payment_is_retried_not_lost(client, user, stripe_on):
    _buy(client, user)
    purchase = CreditPurchase.objects.get()
    import time as clock

    refund = charge_refunded("pi_test_1", 1000)
    refund["data"]["object"]["created"] = int(clock.time())
    early = _post_event(client, refund)
    assert early.status_code == 409  # Stripe will send it again
    assert not StripeEvent.objects.filter(event_id=refund["id"]).exists()
    _post_event(client, checkout_completed(purchase.checkout_session_id, 1000))
    assert balance(user).balance == GRANT + 100_000 * CREDIT
    again = _post_event(client, refund)  # the retry
    assert again.status_code == 200 and balance(user).balance == GRANT
    stale = charge_refunded("pi_someone_elses", 1000)
    stale["data"]["object"]["created"] = int(clock.time()) - 4 * 24 * 3600
    assert _post_event(client, stale).json()["outcome"] == "no credited purchase for this charge"
