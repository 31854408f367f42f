"""Billing reads: balances, statements, reports, price quotes and the ledger's integrity."""
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import Account, Entry, KeySpend, LedgerTransaction, UsageRecord
from billing.services.usage import author_account_id, compute_cost, max_cost, royalty_due


def account_by_holder(*, name: str) -> Account | None:
    """The account of the user or organization named ``name`` (case-insensitive)."""
    return (Account.objects.filter(user__username__iexact=name).first()
            or Account.objects.filter(organization__name__iexact=name).first())


def account_balance(account: Account) -> dict:
    account.refresh_from_db(fields=["balance", "reserved"])
    return {"balance_microcredits": account.balance, "reserved_microcredits": account.reserved,
            "available_microcredits": account.available}


# --- price ------------------------------------------------------------------------------------
def price_quote(*, version, payer: Account | None = None) -> dict:
    """What a call to ``version`` costs: its royalty, the compute rate, the cost to expect
    from its measured run times, and the most one call can cost at the default timeout."""
    from execution.selectors import version_latency

    author_id = author_account_id(version.algorithm)
    royalty = royalty_due(version=version, author_id=author_id,
                          payer_id=payer.pk if payer else None)
    latency = version_latency(version_ids=[version.pk])[version.pk]
    run_p50, run_p95 = latency["run_p50"], latency["run_p95"]
    timeout = settings.EXECUTION_DEFAULT_TIMEOUT
    return {
        "version": version.semantic_version,
        "royalty_microcredits": royalty,
        "compute_microcredits_per_second": (settings.BILLING_COMPUTE_RATE
                                            * settings.BILLING_CORES_PER_RUNNER),
        "cores": settings.BILLING_CORES_PER_RUNNER,
        "measured_calls": latency["calls"],
        "expected_run_ms": run_p50,
        "expected_cost_microcredits": (royalty + compute_cost(run_p50)
                                       if run_p50 is not None else None),
        "p95_cost_microcredits": (royalty + compute_cost(run_p95)
                                  if run_p95 is not None else None),
        "max_cost_microcredits": max_cost(royalty=royalty, timeout=timeout),
        "max_cost_timeout_seconds": timeout,
        "royalty_waived": payer is not None and author_id == payer.pk,
    }


# --- statements and reports -------------------------------------------------------------------
@dataclass
class StatementLine:
    when: object
    kind: str
    description: str
    amount: int
    calls: int = 0
    request_id: str = ""
    parts: list = field(default_factory=list)


def statement(*, account: Account, limit: int = 200) -> list[StatementLine]:
    """The account's movements, newest first. The calls of one tree (a composition) are one
    line: one charge for the tree, with its calls listed under it."""
    entries = (Entry.objects.filter(account=account).select_related("transaction")
               .order_by("-transaction__created_at", "-transaction_id")[: limit * 20])
    lines: list[StatementLine] = []
    trees: dict = {}
    for entry in entries:
        posted = entry.transaction
        if posted.kind == LedgerTransaction.Kind.USAGE and posted.trace_id and entry.amount < 0:
            line = trees.get(posted.trace_id)
            if line is None:
                line = trees[posted.trace_id] = StatementLine(
                    when=posted.created_at, kind=posted.get_kind_display(), description="",
                    amount=0, request_id=str(posted.trace_id))
                lines.append(line)
            line.amount += entry.amount
            line.calls += 1
            if posted.request_id == posted.trace_id:  # the root (its request id is the trace's)
                line.parts.insert(0, posted.memo)
            else:
                line.parts.append(posted.memo)
            line.when = min(line.when, posted.created_at)
            continue
        earned = posted.kind == LedgerTransaction.Kind.USAGE and entry.amount > 0
        lines.append(StatementLine(when=posted.created_at,  # an author's share of a call
                                   kind="Royalty earned" if earned else posted.get_kind_display(),
                                   description=posted.memo, amount=entry.amount,
                                   request_id=str(posted.request_id or "")))
    for line in trees.values():
        nested = len(line.parts) - 1
        line.description = line.parts[0] + (
            f" (and {nested} call{'s' if nested != 1 else ''} it made)" if nested else "")
    return lines[:limit]


def _since(days: int):
    return timezone.now() - timedelta(days=days)


def usage_by_algorithm_and_day(*, account: Account, days: int = 30) -> list[dict]:
    """For a caller: per day and algorithm, calls and what they cost (settled calls)."""
    return list(
        UsageRecord.objects.filter(payer=account, status=UsageRecord.Status.SETTLED,
                                   settled_at__gte=_since(days))
        .annotate(day=TruncDate("settled_at"))
        .values("day", "algorithm_path")
        .annotate(calls=Count("id"), royalty=Sum("royalty"), compute=Sum("compute"))
        .order_by("day", "algorithm_path"))


def earnings_by_version_and_day(*, account: Account, days: int = 30) -> list[dict]:
    """For an author: per day and version, calls and the royalty share earned."""
    rows = (Entry.objects.filter(account=account, kind=Entry.Kind.ROYALTY,
                                 created_at__gte=_since(days))
            .annotate(day=TruncDate("created_at"))
            .values("day", "version__algorithm__owner_name", "version__algorithm__name",
                    "version__major", "version__minor", "version__patch")
            .annotate(calls=Count("id"), earned=Sum("amount"))
            .order_by("day", "version__algorithm__name", "version__major", "version__minor",
                      "version__patch"))
    return [{"day": row["day"], "calls": row["calls"], "earned": row["earned"],
             "algorithm": (f"{row['version__algorithm__owner_name']}/"
                           f"{row['version__algorithm__name']}"),
             "version": f"{row['version__major']}.{row['version__minor']}.{row['version__patch']}"}
            for row in rows]


def daily_series(rows: list[dict], value: str, days: int = 30) -> list[tuple[date, int]]:
    """Rows summed per day over the last ``days`` days, every day present (for charts)."""
    today = timezone.localdate()
    totals = {today - timedelta(days=offset): 0 for offset in range(days - 1, -1, -1)}
    for row in rows:
        if row["day"] in totals:
            totals[row["day"]] += int(row[value] or 0)
    return list(totals.items())


def key_spend_this_month(*, key) -> int:
    """What the key (and the keys made from it) spent this month. A capped key's row has it
    (``spent``, and ``carried``: what was charged before the cap). Without a cap, nothing
    follows the key's calls (a cap lifted left its row as it was then): counted now."""
    return keys_spend_this_month(keys=[key])[key.pk]


def keys_spend_this_month(*, keys) -> dict[int, int]:
    """``key_spend_this_month`` of each of ``keys``, by key id: the month's rows in one read."""
    from billing.services.usage import charged_outside_the_cap, current_month

    month = current_month()
    rows = {spend.key_id: spend for spend in
            KeySpend.objects.filter(key__in=[key.pk for key in keys], month=month)}
    spent = {}
    for key in keys:
        row = rows.get(key.pk)
        if key.monthly_spend_cap is not None:
            spent[key.pk] = row.spent + row.carried if row else 0
        else:
            spent[key.pk] = (row.spent if row else 0) + charged_outside_the_cap(key, month)
    return spent


# --- the operators' view ----------------------------------------------------------------------
def platform_overview(*, days: int = 30) -> dict:
    since = _since(days)
    customer = Q(kind__in=Account.CUSTOMER_KINDS)
    outstanding = Account.objects.filter(customer).aggregate(
        balance=Coalesce(Sum("balance"), 0), reserved=Coalesce(Sum("reserved"), 0))
    revenue = (Entry.objects.filter(account__kind=Account.Kind.REVENUE, created_at__gte=since)
               .values("kind").annotate(total=Sum("amount")))
    settled = UsageRecord.objects.filter(status=UsageRecord.Status.SETTLED,
                                         settled_at__gte=since)
    return {
        "days": days,
        "revenue": {row["kind"].replace("-", "_"): row["total"] for row in revenue},
        "revenue_total": sum(row["total"] for row in revenue),
        "outstanding_microcredits": outstanding["balance"],
        "held_microcredits": outstanding["reserved"],
        "top_algorithms": list(
            settled.values("algorithm_path").annotate(
                calls=Count("id"), spent=Sum(F("royalty") + F("compute")))
            .order_by("-spent", "algorithm_path")[:10]),
        "top_payers": list(
            settled.values("payer__holder_name").annotate(
                calls=Count("id"), spent=Sum(F("royalty") + F("compute")))
            .order_by("-spent", "payer__holder_name")[:10]),
        "revenue_by_day": daily_series(list(
            Entry.objects.filter(account__kind=Account.Kind.REVENUE, created_at__gte=since)
            .annotate(day=TruncDate("created_at")).values("day")
            .annotate(total=Sum("amount"))), "total", days),
    }


def ledger_problems() -> list[str]:
    """Everything that is off in the books; an empty list means they are sound.

    Every transaction balances; every account's balance is the sum of its entries and its
    holds are the sum of the holds of its calls not yet settled (settling is batched, so a
    call that finished a moment ago may still hold; one waiting over ten minutes is a
    problem); no customer is overdrawn; every
    successful call has exactly one usage record and it is settled (or refunded); no failed
    call was charged; every key's monthly spend matches its settled calls.
    """
    from execution.models import Invocation

    problems = []
    unbalanced = (LedgerTransaction.objects.annotate(total=Coalesce(Sum("entries__amount"), 0))
                  .exclude(total=0).values_list("pk", "total"))
    problems += [f"transaction #{pk} does not balance (sums to {total})"
                 for pk, total in unbalanced]
    sums = dict(Entry.objects.values("account").annotate(total=Sum("amount"))
                .values_list("account", "total"))
    holding = [UsageRecord.Status.HELD, UsageRecord.Status.PENDING]
    holds = dict(UsageRecord.objects.filter(settled_at__isnull=True, status__in=holding)
                 .values("payer")
                 .annotate(total=Sum("held")).values_list("payer", "total"))
    for account in Account.objects.all():
        if account.balance != sums.get(account.pk, 0):
            problems.append(f"account #{account.pk} ({account.name}): balance "
                            f"{account.balance} but its entries sum to {sums.get(account.pk, 0)}")
        if account.reserved != holds.get(account.pk, 0):
            problems.append(f"account #{account.pk} ({account.name}): holds {account.reserved} "
                            f"but its running calls hold {holds.get(account.pk, 0)}")
        if account.kind in Account.CUSTOMER_KINDS and account.available < 0:
            problems.append(f"account #{account.pk} ({account.name}) is overdrawn")
    succeeded = Invocation.objects.filter(status=Invocation.Status.SUCCEEDED)
    missing = succeeded.annotate(n=Count("usage")).exclude(n=1).values_list("request_id",
                                                                          flat=True)
    problems += [f"successful call {rid} has no usage record" for rid in missing[:100]]
    unsettled = succeeded.filter(usage__status__in=[UsageRecord.Status.HELD,
                                                    UsageRecord.Status.RELEASED])
    problems += [f"successful call {rid} was not billed"
                 for rid in unsettled.values_list("request_id", flat=True)[:100]]
    late = UsageRecord.objects.filter(
        settled_at__isnull=True, status=UsageRecord.Status.PENDING,
        finished_at__lt=timezone.now() - timedelta(minutes=10))
    problems += [f"finished call {rid} has waited over 10 minutes to be settled"
                 for rid in late.values_list("request_id", flat=True)[:100]]
    charged_failures = Invocation.objects.filter(
        status=Invocation.Status.FAILED, usage__status=UsageRecord.Status.SETTLED)
    problems += [f"failed call {rid} was charged"
                 for rid in charged_failures.values_list("request_id", flat=True)[:100]]
    stale = UsageRecord.objects.filter(
        settled_at__isnull=True, status=UsageRecord.Status.HELD,
        invocation__status__in=Invocation.FINISHED)
    problems += [f"finished call {rid} still holds credits"
                 for rid in stale.values_list("request_id", flat=True)[:100]]
    charges, holds_by_key = {}, {}
    for usage in UsageRecord.objects.exclude(cap_month="").filter(
            status__in=[UsageRecord.Status.SETTLED, UsageRecord.Status.HELD,
                        UsageRecord.Status.PENDING]).only(
            "cap_keys", "cap_month", "status", "royalty", "compute", "held"):
        for key_id in usage.cap_keys:
            slot = (key_id, usage.cap_month)
            if usage.status == UsageRecord.Status.SETTLED:
                charges[slot] = charges.get(slot, 0) + usage.royalty + usage.compute
            else:
                holds_by_key[slot] = holds_by_key.get(slot, 0) + usage.held
    for spend in KeySpend.objects.all():
        slot = (spend.key_id, spend.month)
        if spend.spent != charges.get(slot, 0):
            problems.append(f"key #{spend.key_id} in {spend.month}: spent {spend.spent} but "
                            f"its settled calls cost {charges.get(slot, 0)}")
        if spend.reserved != holds_by_key.get(slot, 0):
            problems.append(f"key #{spend.key_id} in {spend.month}: holds {spend.reserved} but "
                            f"its unsettled calls hold {holds_by_key.get(slot, 0)}")
    return problems


def recent_adjustments(*, limit: int = 20) -> list[dict]:
    return list(Entry.objects.filter(transaction__kind=LedgerTransaction.Kind.ADJUSTMENT,
                                     account__kind__in=Account.CUSTOMER_KINDS)
                .select_related("transaction", "transaction__created_by", "account")
                .order_by("-id")[:limit])
