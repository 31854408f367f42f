"""Metering: one usage record per call (unique by request id), and per-key monthly spend."""
from django.db import models

from marketplace.models import ApiKey

from .ledger import Account, LedgerTransaction


class UsageRecord(models.Model):
    """A call's price: held before it runs, then settled into the ledger or released, once."""

    class Status(models.TextChoices):
        HELD = "held", "Held (the call is running)"
        PENDING = "pending", "Finished; being settled"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released (the call failed; not billed)"
        REFUNDED = "refunded", "Refunded (the platform's fault)"

    request_id = models.UUIDField(unique=True)
    trace_id = models.UUIDField(db_index=True)
    # No database-level foreign keys on the call path's rows (see execution.Invocation);
    # Django enforces PROTECT and SET_NULL itself. Payer and author lookups use the
    # (payer|author, settled_at) indexes below.
    invocation = models.OneToOneField("execution.Invocation", null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="usage",
                                      db_constraint=False)
    payer = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage",
                              db_constraint=False, db_index=False)
    author = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="earnings", db_constraint=False, db_index=False)
    cap_keys = models.JSONField(default=list, blank=True,
                                help_text="Ids of the capped keys this call counts against: the "
                                          "calling key and every capped key it descends from.")
    cap_month = models.CharField(max_length=7, blank=True, help_text="YYYY-MM")
    algorithm_path = models.CharField(max_length=120)
    version = models.ForeignKey("catalog.AlgorithmVersion", null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+",
                                db_constraint=False)
    version_text = models.CharField(max_length=80)
    # Not indexed: closing a call (held -> pending) then changes no indexed column, and
    # PostgreSQL rewrites the row in place (a HOT update) instead of adding an entry to
    # each of the table's indexes. The rows still to settle are found by the partial index
    # below (a row's settled_at is set when it is settled or released).
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HELD)
    held = models.BigIntegerField(help_text="The most this call can cost (microcredits).")
    royalty = models.BigIntegerField(default=0)
    compute = models.BigIntegerField(default=0)
    run_ms = models.PositiveIntegerField(default=0)
    billable = models.BooleanField(default=False, help_text="Set when the call finishes: "
                                   "charge it (it succeeded) or release its hold.")
    finished_at = models.DateTimeField(null=True, blank=True)
    tree_refunded = models.BooleanField(
        default=False, help_text="On a root call: its tree failed through the platform's fault; "
                                 "calls of the tree settled later are not charged.")
    # No index: nothing looks a usage up by its charge (ledger transactions are never
    # deleted), and every settlement would write one more entry.
    transaction = models.ForeignKey(LedgerTransaction, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+",
                                    db_index=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    settled_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["payer", "settled_at"]),
                   models.Index(fields=["author", "settled_at"]),
                   # Held and pending calls: the settler's batches, the reconciler.
                   models.Index(fields=["id"], condition=models.Q(settled_at__isnull=True),
                                name="billing_usage_unsettled")]
        constraints = [models.CheckConstraint(condition=models.Q(held__gte=0),
                                              name="billing_usage_held_not_negative")]

    @property
    def total(self) -> int:
        return self.royalty + self.compute


class KeySpend(models.Model):
    """What one key spent (and holds) in one calendar month, against its optional cap."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="spend")
    month = models.CharField(max_length=7)
    spent = models.BigIntegerField(default=0, help_text="The capped calls' charges, settled.")
    reserved = models.BigIntegerField(default=0)
    carried = models.BigIntegerField(
        default=0, help_text="Charged this month while the key had no cap (counted when one "
                             "is set: billing.key_spend_recount); counts against it too.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "month"],
                                               name="billing_keyspend_one_per_month")]
