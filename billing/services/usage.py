"""Metering: hold a call's maximum price before it runs, settle the real price once after.

A hold is a conditional UPDATE (``balance - reserved >= price``), so however many calls race,
an account can never promise more than it has; the database's check constraint is the last
word. Settlement happens in the same database transaction that closes the Invocation, so a
finished call is billed exactly once or not at all, and a retried task finds it settled.
"""
import math

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import Account, Entry, KeySpend, LedgerTransaction, UsageRecord
from marketplace.errors import PaymentRequiredError
from marketplace.models import ApiKey

from .ledger import account_for_organization, account_for_user, ledger_post
from .ledger import platform_account

# Error types that are the platform's fault: the call costs nothing, and the tree under a
# root that failed this way is refunded.
PRICE_FAULTS = {"InternalError"}


def credits(microcredits: int) -> str:
    return f"{microcredits / 1_000_000:,.6f}".rstrip("0").rstrip(".")


def compute_cost(run_ms: float) -> int:
    """Compute at the resource class's rate, by the millisecond (a started one counts)."""
    rate = settings.BILLING_COMPUTE_RATE * settings.BILLING_CORES_PER_RUNNER
    return math.ceil(max(run_ms, 0)) * rate // 1000


def max_cost(*, royalty: int, timeout: float) -> int:
    return royalty + compute_cost(timeout * 1000)


def _account_id(*, user_id: int | None, organization_id: int | None) -> int | None:
    """The account id of a user or an organization: one indexed SELECT of one column on the
    hot path (opening the account, with its grant, only if it has none yet)."""
    if organization_id:
        found = Account.objects.filter(organization_id=organization_id)
    elif user_id:
        found = Account.objects.filter(user_id=user_id)
    else:
        return None
    account_id = found.values_list("pk", flat=True).first()
    if account_id is None:
        from marketplace.models import Organization, User

        account_id = (account_for_organization(Organization.objects.get(pk=organization_id))
                      if organization_id else account_for_user(User.objects.get(pk=user_id))).pk
    return account_id


def _month() -> str:
    return timezone.now().strftime("%Y-%m")


def usage_reserve(*, invocation, key: ApiKey, parent=None) -> UsageRecord:
    """Hold the most ``invocation`` can cost, or raise PaymentRequired (402) before any work.

    Runs inside the transaction that records the call. A child call in a composition is paid
    by the same account as its root (its derived key has the same owner) and counts against
    the spending cap of the root's key.
    """
    payer_id = _account_id(user_id=key.user_id, organization_id=key.organization_id)
    algorithm = invocation.algorithm
    author_id = _account_id(user_id=algorithm.owner_user_id,
                            organization_id=algorithm.owner_org_id) if algorithm else None
    royalty = invocation.version.royalty_microcredits if invocation.version_id else 0
    if author_id == payer_id:
        royalty = 0  # authors run their own algorithms for the compute alone
    held = max_cost(royalty=royalty, timeout=float(invocation.options.get("timeout", 300)))
    cap_key = key
    if parent is not None:
        parent_usage = UsageRecord.objects.filter(request_id=parent.request_id).only(
            "cap_key").first()
        cap_key = parent_usage.cap_key if parent_usage else None
    month = ""
    if cap_key is not None and cap_key.monthly_spend_cap is not None:
        month = _month()
        _hold_under_cap(cap_key, month, held)
    if not Account.objects.filter(pk=payer_id, balance__gte=F("reserved") + held).update(
            reserved=F("reserved") + held):
        payer = Account.objects.get(pk=payer_id)
        raise PaymentRequiredError(
            f"Not enough credits: this call may cost up to {credits(held)} credits "
            f"({credits(royalty)} royalty and up to "
            f"{credits(held - royalty)} compute for its timeout) and "
            f"{payer.name} has {credits(max(payer.available, 0))} available.",
            extra={"required_microcredits": held,
                   "available_microcredits": max(payer.available, 0)})
    return UsageRecord.objects.create(
        request_id=invocation.request_id, trace_id=invocation.trace_id, invocation=invocation,
        payer_id=payer_id, author_id=author_id, cap_key=cap_key if month else None,
        cap_month=month, algorithm_path=invocation.algorithm_path, version=invocation.version,
        version_text=invocation.version_text, held=held, royalty=royalty)


def _hold_under_cap(key: ApiKey, month: str, held: int) -> None:
    cap = key.monthly_spend_cap
    try:
        with transaction.atomic():
            KeySpend.objects.get_or_create(key=key, month=month)
    except IntegrityError:
        pass  # made by a concurrent call
    if not KeySpend.objects.filter(key=key, month=month).filter(
            spent__lte=cap - held - F("reserved")).update(reserved=F("reserved") + held):
        spend = KeySpend.objects.get(key=key, month=month)
        raise PaymentRequiredError(
            f"This key's monthly spending cap is {credits(cap)} credits; it has spent "
            f"{credits(spend.spent)} this month and holds {credits(spend.reserved)} for running "
            f"calls, and this call may cost up to {credits(held)}. Raise the cap on the API "
            f"keys page or wait for next month.",
            extra={"cap_microcredits": cap, "spent_microcredits": spend.spent})


@transaction.atomic(savepoint=False)
def usage_settle(*, invocation, succeeded: bool, platform_fault: bool = False) -> None:
    """Bill a finished call (or release its hold), exactly once. Call it inside the
    transaction that closes the Invocation."""
    usage = UsageRecord.objects.select_for_update().filter(
        request_id=invocation.request_id).first()
    if usage is not None and usage.status == UsageRecord.Status.HELD:
        if succeeded:
            _settle(usage, invocation.run_ms or 0.0)
        else:
            _release(usage)
    if platform_fault and invocation.parent_id is None:
        usage_refund_tree(trace_id=invocation.trace_id,
                          reason=f"{invocation.algorithm_path} failed through the platform's "
                                 f"fault ({invocation.error_type or 'InternalError'})")


def _settle(usage: UsageRecord, run_ms: float) -> None:
    compute = min(compute_cost(run_ms), usage.held - usage.royalty)
    total = usage.royalty + compute
    author_share = usage.royalty * settings.BILLING_AUTHOR_SHARE_PERCENT // 100
    if usage.cap_month:
        KeySpend.objects.filter(key_id=usage.cap_key_id, month=usage.cap_month).update(
            reserved=F("reserved") - usage.held, spent=F("spent") + total)
    revenue = platform_account(Account.Kind.REVENUE)
    version_id = usage.version_id
    usage.transaction = ledger_post(
        kind=LedgerTransaction.Kind.USAGE,
        memo=f"{usage.algorithm_path}/{usage.version_text}",
        request_id=usage.request_id, trace_id=usage.trace_id,
        entries=[(usage.payer_id, -total, Entry.Kind.CHARGE, version_id),
                 (usage.author_id or revenue, author_share, Entry.Kind.ROYALTY, version_id),
                 (revenue, usage.royalty - author_share, Entry.Kind.PLATFORM_FEE, version_id),
                 (revenue, compute, Entry.Kind.COMPUTE, version_id)],
        release={usage.payer_id: usage.held})
    usage.compute, usage.run_ms = compute, math.ceil(run_ms)
    usage.status, usage.settled_at = UsageRecord.Status.SETTLED, timezone.now()
    usage.save(update_fields=["compute", "run_ms", "status", "settled_at", "transaction"])


def _release(usage: UsageRecord) -> None:
    if usage.cap_month:
        KeySpend.objects.filter(key_id=usage.cap_key_id, month=usage.cap_month).update(
            reserved=F("reserved") - usage.held)
    Account.objects.filter(pk=usage.payer_id).update(reserved=F("reserved") - usage.held)
    usage.royalty = 0
    usage.status, usage.settled_at = UsageRecord.Status.RELEASED, timezone.now()
    usage.save(update_fields=["royalty", "status", "settled_at"])


@transaction.atomic(savepoint=False)
def usage_refund_tree(*, trace_id, reason: str) -> int:
    """Refund every settled call in a tree whose root failed through the platform's fault.
    The platform pays the refund from its revenue: the authors keep their royalties, since
    their algorithms did their work. Returns how many calls were refunded."""
    refunded = 0
    revenue = platform_account(Account.Kind.REVENUE)
    for usage in UsageRecord.objects.select_for_update().filter(
            trace_id=trace_id, status=UsageRecord.Status.SETTLED).order_by("pk"):
        total = usage.total
        if usage.cap_month:
            KeySpend.objects.filter(key_id=usage.cap_key_id, month=usage.cap_month).update(
                spent=F("spent") - total)
        ledger_post(kind=LedgerTransaction.Kind.REFUND, memo=f"Refund: {reason}"[:300],
                    request_id=usage.request_id, trace_id=trace_id,
                    entries=[(revenue, -total, Entry.Kind.DEBIT, usage.version_id),
                             (usage.payer_id, total, Entry.Kind.CREDIT, usage.version_id)])
        usage.status = UsageRecord.Status.REFUNDED
        usage.save(update_fields=["status"])
        refunded += 1
    return refunded


def usage_reconcile() -> int:
    """Settle or release holds whose call is finished. Closing a call settles its hold in
    the same transaction, so this finds nothing unless a row was changed by hand; it is the
    safety net that keeps a hold from outliving its call. Returns how many it fixed."""
    fixed = 0
    stale = UsageRecord.objects.filter(status=UsageRecord.Status.HELD,
                                       invocation__status__in=["succeeded", "failed"])
    for pk in stale.values_list("pk", flat=True):
        with transaction.atomic():
            usage = UsageRecord.objects.select_for_update().select_related("invocation").get(
                pk=pk)
            if usage.status != UsageRecord.Status.HELD:
                continue
            if usage.invocation.status == "succeeded":
                _settle(usage, usage.invocation.run_ms or 0.0)
            else:
                _release(usage)
            fixed += 1
    return fixed
