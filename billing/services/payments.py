"""Stripe: Checkout sessions for credit packs, and the webhook that credits them."""
import json
import logging
import time

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Account, CreditPurchase, Entry, LedgerTransaction, StripeEvent
from marketplace.errors import ApplicationError, InputError
from marketplace.models import User

from .ledger import ledger_post, platform_account

logger = logging.getLogger(__name__)

HANDLED_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
                  "charge.refunded")


class PaymentsOff(ApplicationError):
    status_code, error_type = 503, "InternalError"


class RefundNotReady(ApplicationError):
    status_code, error_type = 409, "InputError"


RETRY_WINDOW = 3 * 24 * 3600  # Stripe retries a webhook for up to three days


def payments_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _client() -> stripe.StripeClient:
    addresses = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else {}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=addresses,
                               max_network_retries=1)


def checkout_create(*, account: Account, pack: str, user: User, success_url: str,
                    cancel_url: str) -> CreditPurchase:
    """A Stripe Checkout session for one credit pack; the caller redirects to its url."""
    if not payments_enabled():
        raise PaymentsOff("Payments are off on this Algostore: no Stripe keys are configured.")
    if pack not in settings.BILLING_PACKS:
        raise InputError(f"Unknown credit pack {pack!r}.")
    cents, pack_credits = settings.BILLING_PACKS[pack]
    microcredits = pack_credits * 1_000_000
    try:
        session = _client().v1.checkout.sessions.create(params={
            "mode": "payment",
            "line_items": [{"quantity": 1, "price_data": {
                "currency": "usd", "unit_amount": cents,
                "product_data": {"name": f"{pack_credits:,} Algostore credits"}}}],
            "client_reference_id": str(account.pk),
            "metadata": {"account": str(account.pk), "pack": pack},
            "success_url": success_url, "cancel_url": cancel_url,
        })
    except stripe.StripeError as error:
        logger.warning("Stripe refused a checkout session: %s", type(error).__name__)
        raise PaymentsOff("The payment provider could not be reached; try again later.") from None
    purchase = CreditPurchase.objects.create(
        account=account, created_by=user, pack=pack, amount_cents=cents,
        microcredits=microcredits, checkout_session_id=session.id)
    purchase.checkout_url = session.url
    return purchase


def stripe_event_handle(*, payload: bytes, signature: str) -> str:
    """Verify, store once, and apply one webhook event; what happened, in a few words.

    A bad signature raises InputError (400) and changes nothing. A replayed event (same id)
    changes nothing. Event types outside HANDLED_EVENTS are acknowledged and not stored.
    """
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise PaymentsOff("Payments are off on this Algostore.")  # (no setting named to callers)
    try:
        event = stripe.Webhook.construct_event(payload, signature,
                                               settings.STRIPE_WEBHOOK_SECRET)
    except (ValueError, stripe.SignatureVerificationError):
        raise InputError("The Stripe signature does not verify.") from None
    if event.type not in HANDLED_EVENTS:
        return f"ignored: {event.type}"
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(event_id=event.id, type=event.type,
                                                livemode=bool(event.livemode),
                                                payload=json.loads(payload))
            stored.outcome = _apply(event)
            stored.save(update_fields=["outcome"])
    except IntegrityError:
        return "duplicate: already processed"
    return stored.outcome


def _apply(event) -> str:
    obj = event.data.object.to_dict()  # a StripeObject; plain dict access below
    if event.type.startswith("checkout.session."):
        if obj.get("payment_status") != "paid":
            return "not paid yet"
        purchase = CreditPurchase.objects.select_for_update().filter(
            checkout_session_id=obj["id"]).first()
        if purchase is None:
            return "unknown checkout session"
        if purchase.status != CreditPurchase.Status.PENDING:
            return "already credited"
        if obj.get("amount_total") is not None and obj["amount_total"] != purchase.amount_cents:
            return f"amount mismatch: {obj['amount_total']} != {purchase.amount_cents}"
        if obj.get("currency") and obj["currency"].lower() != purchase.currency:
            return f"currency mismatch: {obj['currency']} != {purchase.currency}"
        purchase.transaction = ledger_post(
            kind=LedgerTransaction.Kind.PURCHASE, memo=f"Credit pack: {purchase.pack}",
            entries=[(platform_account(Account.Kind.CASH), -purchase.microcredits,
                      Entry.Kind.DEBIT, None),
                     (purchase.account_id, purchase.microcredits, Entry.Kind.CREDIT, None)])
        purchase.status, purchase.paid_at = CreditPurchase.Status.PAID, timezone.now()
        purchase.payment_intent_id = obj.get("payment_intent") or ""
        purchase.save()
        return f"credited {purchase.microcredits} microcredits to account {purchase.account_id}"
    # charge.refunded
    purchase = CreditPurchase.objects.select_for_update().filter(
        payment_intent_id=obj.get("payment_intent") or "-").first()
    if purchase is None:
        created = int(obj.get("created") or getattr(event, "created", 0) or 0)
        if time.time() - created < RETRY_WINDOW:
            # Perhaps ours, with its checkout.session.completed not applied yet: refuse, so
            # Stripe sends it again later (storing it would lose the refund for good).
            raise RefundNotReady("No credited purchase for this charge yet; retry later.")
        return "no credited purchase for this charge"
    refunded = min(int(obj.get("amount_refunded") or 0), purchase.amount_cents)
    newly = refunded - purchase.refunded_cents
    if newly <= 0:
        return "nothing new refunded"
    wanted = purchase.microcredits * newly // purchase.amount_cents
    cash = platform_account(Account.Kind.CASH)
    locked = {a.pk: a for a in Account.objects.select_for_update().filter(
        pk__in=[purchase.account_id, cash]).order_by("pk")}  # id order, as every posting
    account = locked[purchase.account_id]
    taken = min(wanted, max(account.available, 0))  # a balance never goes below zero
    ledger_post(kind=LedgerTransaction.Kind.PURCHASE_REFUND,
                memo=f"Refund of credit pack {purchase.pack}",
                entries=[(purchase.account_id, -taken, Entry.Kind.DEBIT, None),
                         (cash, taken, Entry.Kind.CREDIT, None)])
    purchase.refunded_cents = refunded
    if refunded >= purchase.amount_cents:
        purchase.status = CreditPurchase.Status.REFUNDED
    purchase.save()
    shortfall = wanted - taken
    return (f"removed {taken} microcredits" +
            (f"; {shortfall} already spent and not recovered" if shortfall else ""))
