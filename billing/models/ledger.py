"""The double-entry ledger: accounts, transactions that always balance, append-only entries.

Amounts are integer microcredits (1 credit = 1,000,000). An account's ``balance`` is the sum
of its entries, kept beside them in the same database transaction so that "may this caller
pay?" is one conditional UPDATE; ``check_ledger`` proves the two never disagree.
"""
from django.db import models

from marketplace.models import Organization, User
from marketplace.models.audit import AppendOnlyModel

MICROCREDITS = 1_000_000


class Account(models.Model):
    class Kind(models.TextChoices):
        USER = "user", "User"
        ORGANIZATION = "organization", "Organization"
        # The platform's own books. Sources (grants, cash) go negative as credits leave them.
        REVENUE = "platform-revenue", "Platform revenue (royalty share and compute)"
        GRANTS = "platform-grants", "Free credits granted"
        CASH = "platform-cash", "Credits bought (Stripe)"
        ADJUSTMENTS = "platform-adjustments", "Manual adjustments"

    CUSTOMER_KINDS = (Kind.USER, Kind.ORGANIZATION)

    kind = models.CharField(max_length=24, choices=Kind.choices)
    # The books outlive their holder: deleting a user or an organization keeps its account
    # (and every entry) under the name copied here.
    user = models.OneToOneField(User, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="billing_account")
    organization = models.OneToOneField(Organization, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="billing_account")
    holder_name = models.CharField(max_length=150, blank=True)
    balance = models.BigIntegerField(default=0, help_text="Microcredits: the sum of entries.")
    reserved = models.BigIntegerField(default=0,
                                      help_text="Microcredits held for calls in flight.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A customer can never owe: the database itself refuses an overdraft.
            models.CheckConstraint(
                condition=(~models.Q(kind__in=["user", "organization"])
                           | models.Q(balance__gte=models.F("reserved"), reserved__gte=0)),
                name="billing_account_no_overdraft"),
            models.CheckConstraint(
                condition=(models.Q(kind="user", organization__isnull=True)
                           | models.Q(kind="organization", user__isnull=True)
                           | models.Q(user__isnull=True, organization__isnull=True)),
                name="billing_account_owner_matches_kind"),
            models.UniqueConstraint(fields=["kind"], condition=~models.Q(
                kind__in=["user", "organization"]), name="billing_one_platform_account_per_kind"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.holder_name or self.get_kind_display()

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class LedgerTransaction(AppendOnlyModel):
    """One movement of credits: its entries sum to zero."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Free credits"
        USAGE = "usage", "Algorithm call"
        REFUND = "refund", "Refund"
        PURCHASE = "purchase", "Credits bought"
        PURCHASE_REFUND = "purchase-refund", "Purchase refunded"
        ADJUSTMENT = "adjustment", "Manual adjustment"

    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    memo = models.CharField(max_length=300, blank=True)
    request_id = models.UUIDField(null=True, blank=True, db_index=True,
                                  help_text="The call, for usage and refunds.")
    trace_id = models.UUIDField(null=True, blank=True, db_index=True,
                                help_text="The root call's trace: one tree, one charge.")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The database's own guarantee that a call is charged at most once.
            models.UniqueConstraint(fields=["request_id"], condition=models.Q(kind="usage"),
                                    name="billing_one_charge_per_call"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class Entry(AppendOnlyModel):
    class Kind(models.TextChoices):
        CHARGE = "charge", "Charge"
        ROYALTY = "royalty", "Author's royalty"
        PLATFORM_FEE = "platform-fee", "Platform share of the royalty"
        COMPUTE = "compute", "Compute"
        CREDIT = "credit", "Credit"
        DEBIT = "debit", "Debit"

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT,
                                    related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Microcredits; negative leaves the account.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # For reports without joins: which version a royalty or charge was for.
    version = models.ForeignKey("catalog.AlgorithmVersion", null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "created_at"])]
