"""Stripe: credit packs bought through Checkout, and every webhook event, stored once."""
from django.db import models

from marketplace.models import User

from .ledger import Account, LedgerTransaction


class CreditPurchase(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for payment"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="purchases")
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    pack = models.CharField(max_length=20)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    microcredits = models.BigIntegerField()
    checkout_session_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    refunded_cents = models.PositiveIntegerField(default=0)
    transaction = models.ForeignKey(LedgerTransaction, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class StripeEvent(models.Model):
    """A verified webhook event; its id is unique, so a replay changes nothing."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    outcome = models.CharField(max_length=300, blank=True)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
