"""Metering: hold a call's maximum price before it runs, settle the real price once after.

A hold is a conditional UPDATE (``balance - reserved >= price``), so however many calls race,
an account can never promise more than it has; the database's check constraint is the last
word. Closing a call (in the transaction that closes its Invocation) shrinks or releases
its hold once; a batch settler then writes each finished call into the ledger exactly once
(``usage_settle_pending``).
"""
import atexit
import functools
import logging
import math
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Account, Entry, KeySpend, LedgerTransaction, UsageRecord
from marketplace.errors import PaymentRequiredError
from marketplace.models import ApiKey
from marketplace.row_update import (Insert, Update, commit_without_waiting_for_disk,
                                     model_instance, row_update, statement_rows, write_chain)

from .ledger import (account_for_organization, account_for_user, ledger_post, move_balances,
                     platform_account)

logger = logging.getLogger(__name__)


def credits(microcredits: int) -> str:
    """Microcredits as credits for people: 12345678 -> "12.345678", 10**10 -> "10,000"."""
    text = f"{int(microcredits) / 1_000_000:,.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def compute_cost(run_ms: float) -> int:
    """Compute at the resource class's rate, by the millisecond (a started one counts)."""
    rate = settings.BILLING_COMPUTE_RATE * settings.BILLING_CORES_PER_RUNNER
    return math.ceil(max(run_ms, 0)) * rate // 1000


def max_cost(*, royalty: int, timeout: float) -> int:
    return royalty + compute_cost(timeout * 1000)


_account_ids: dict[tuple[str, int], int] = {}


def _account_id(*, user_id: int | None, organization_id: int | None) -> int | None:
    """The account id of a user or an organization. An account is never deleted nor moved
    to another holder, so the answer is remembered for the life of the process (one SELECT
    the first time; opening the account, with its grant, if it has none yet)."""
    holder = _holder(user_id=user_id, organization_id=organization_id)
    if holder[1] is None:
        return None
    account_id = _account_ids.get(holder)
    if account_id is not None:
        return account_id
    found = (Account.objects.filter(organization_id=organization_id) if organization_id
             else Account.objects.filter(user_id=user_id))
    account_id = found.values_list("pk", flat=True).first()
    if account_id is None:
        from marketplace.models import Organization, User

        account_id = (account_for_organization(Organization.objects.get(pk=organization_id))
                      if organization_id else account_for_user(User.objects.get(pk=user_id))).pk
    # Remembered only once committed: an account opened inside a transaction that then
    # rolls back (a 402) must not be remembered by an id that no longer exists.
    transaction.on_commit(lambda: _account_ids.__setitem__(holder, account_id))
    return account_id


def _holder(*, user_id: int | None, organization_id: int | None) -> tuple:
    return ("org", organization_id) if organization_id else ("user", user_id)


def author_account_id(algorithm) -> int:
    return _account_id(user_id=algorithm.owner_user_id, organization_id=algorithm.owner_org_id)


def royalty_due(*, version, author_id: int | None, payer_id: int | None) -> int:
    """The royalty a call owes: the version's, except to its own author, who runs their
    algorithms for the compute alone (and a build-hash call, which has no version)."""
    if version is None or (author_id is not None and author_id == payer_id):
        return 0
    return version.royalty_microcredits


def current_month() -> str:
    """The month a spending cap counts (UTC), as ``KeySpend.month`` names it."""
    return timezone.now().strftime("%Y-%m")


def usage_reserve(*, invocation, key: ApiKey) -> UsageRecord:
    """Hold the most ``invocation`` can cost, or raise PaymentRequired (402) before any work.

    An unsaved ``invocation`` is recorded here, with its hold and its usage row, all or
    nothing: on PostgreSQL one statement takes the holds (the key caps', then the payer's),
    then inserts the call and its usage, each step only if the one before it took. A child
    call in a composition is paid by the same account as its root (its derived key has the
    same owner) and, through the derived key's parents, counts against the caps of the
    root's key and its ancestors.
    """
    algorithm = invocation.algorithm
    capped = _capped_chain(key)
    holders = [_holder(user_id=key.user_id, organization_id=key.organization_id)]
    if algorithm is not None:
        holders.append(_holder(user_id=algorithm.owner_user_id,
                               organization_id=algorithm.owner_org_id))
    if not capped and all(holder in _account_ids or holder[1] is None for holder in holders):
        # One statement: the payer's hold is its first write, so a refusal writes nothing.
        return _reserve(invocation, key, capped,
                        wait_for_disk=settings.CALL_WRITES_WAIT_FOR_DISK)
    # A refusal raises inside the transaction, which undoes what came before the step that
    # failed (a cap's hold taken before the payer's was refused) and any account opened.
    # It waits for the disk: an account opened here is remembered by id (_account_ids),
    # and an id lost to a crash of the database could be issued again, to someone else.
    with transaction.atomic():
        return _reserve(invocation, key, capped, wait_for_disk=True)


def _reserve(invocation, key: ApiKey, capped: list[ApiKey], *,
             wait_for_disk: bool) -> UsageRecord:
    payer_id = _account_id(user_id=key.user_id, organization_id=key.organization_id)
    algorithm = invocation.algorithm
    author_id = author_account_id(algorithm) if algorithm else None
    royalty = royalty_due(version=invocation.version if invocation.version_id else None,
                          author_id=author_id, payer_id=payer_id)
    held = max_cost(royalty=royalty, timeout=float(invocation.options.get("timeout", 300)))
    month = current_month() if capped else ""
    steps = [Update(KeySpend, _key_spend_id(cap_key, month), add={"reserved": held},
                    check=("spent + carried <= %s - reserved",
                           [cap_key.monthly_spend_cap - held]))
             for cap_key in capped]
    # What the payer has left besides this hold (and every other one it has).
    payer = Update(Account, payer_id, add={"reserved": held},
                   check=("balance >= reserved + %s", [held]), returning="balance - reserved")
    steps.append(payer)
    usage = model_instance(UsageRecord, {
        "request_id": invocation.request_id, "trace_id": invocation.trace_id,
        "invocation_id": invocation.pk, "payer_id": payer_id, "author_id": author_id,
        "cap_keys": [k.pk for k in capped], "cap_month": month,
        "algorithm_path": invocation.algorithm_path, "version_id": invocation.version_id,
        "version_text": invocation.version_text, "held": held, "royalty": royalty})
    if invocation.pk is None:
        steps.append(Insert(invocation))
        steps.append(Insert(usage, links={"invocation_id": len(steps) - 1}))
    else:
        steps.append(Insert(usage))
    done = write_chain(steps, wait_for_disk=wait_for_disk)
    if done[-1] is not None:
        usage.headroom = payer.returned
        return usage
    failed = done.index(None)
    if failed < len(capped):
        cap_key = capped[failed]
        spend = KeySpend.objects.get(pk=steps[failed].pk)
        raise PaymentRequiredError(
            f"This key's monthly spending cap is {credits(cap_key.monthly_spend_cap)} credits; "
            f"it has spent {credits(spend.spent + spend.carried)} this month and holds "
            f"{credits(spend.reserved)} for running calls, and this call may cost up to "
            f"{credits(held)}. Raise the cap on the API keys page or wait for next month.",
            extra={"cap_microcredits": cap_key.monthly_spend_cap,
                   "spent_microcredits": spend.spent + spend.carried})
    payer = Account.objects.get(pk=payer_id)
    raise PaymentRequiredError(
        f"Not enough credits: this call may cost up to {credits(held)} credits "
        f"({credits(royalty)} royalty and up to "
        f"{credits(held - royalty)} compute for its timeout) and "
        f"{payer.name} has {credits(max(payer.available, 0))} available.",
        extra={"required_microcredits": held,
               "available_microcredits": max(payer.available, 0)})


def _capped_chain(key: ApiKey) -> list[ApiKey]:
    """The capped keys a call with ``key`` counts against, in id order (the lock order): the
    key itself and every key it was made from. A key minted by a capped key, and the keys
    derived for composed calls, spend out of their ancestors' caps too."""
    chain, current, seen = [], key, set()
    while current is not None and current.pk not in seen:
        seen.add(current.pk)
        if current.monthly_spend_cap is not None:
            chain.append(current)
        # Authentication reads a key with its parent (a derived key's parent: no query).
        current = current.parent if current.parent_id else None
    return sorted(chain, key=lambda k: k.pk)


def _cap_spend(usage: UsageRecord, *, reserved: int = 0, spent: int = 0) -> None:
    if usage.cap_month and (reserved or spent):
        KeySpend.objects.filter(key_id__in=usage.cap_keys, month=usage.cap_month).update(
            reserved=F("reserved") + reserved, spent=F("spent") + spent)


def _key_spend_id(key: ApiKey, month: str) -> int:
    """The id of a key's spending row for the month, made if it is the month's first call."""
    try:
        with transaction.atomic():
            spend, _created = KeySpend.objects.get_or_create(key=key, month=month)
    except IntegrityError:  # made by a concurrent call
        spend = KeySpend.objects.get(key=key, month=month)
    return spend.pk


def key_spend_recount(*, key: ApiKey) -> None:
    """The key's spending row for this month made if needed, with what its cap did not follow
    counted again
    (``carried``): the charges this month (UTC) of the calls made with the key, or with a key
    made from it, and of the calls those composed, that were not counted against its cap when
    they were made (it had none, or it was lifted), refunds excluded. For a cap set during the
    month, or set again: the month's spend before it counts against it, as a monthly cap
    promises. Counted before the row is touched (no lock is held while counting).

    Finished calls count, settled or about to be; a call still running at that moment
    counts only if it was capped (it settles into ``spent``): its price is not known yet."""
    month = current_month()
    carried = charged_outside_the_cap(key, month)
    KeySpend.objects.filter(pk=_key_spend_id(key, month)).update(carried=carried)


def charged_outside_the_cap(key: ApiKey, month: str) -> int:
    """What ``month``'s calls made with the key, or with a key made from it, and the calls
    those composed, were charged without the key's cap following them (``spent`` has the
    rest)."""
    from execution.models import Invocation

    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=dt_timezone.utc)
    end = (start + timedelta(days=32)).replace(day=1)
    # The key and the keys made from it, down the tree; not the short-lived keys its calls
    # were given for their own calls (each serves one call: those calls are in their roots'
    # trees below, and a busy key has made a great many).
    keys, level = {key.pk}, [key.pk]
    while level:
        level = [pk for pk in ApiKey.objects.filter(
            parent_id__in=level, serving__isnull=True).values_list("pk", flat=True)
            if pk not in keys]
        keys.update(level)
    roots = Invocation.objects.filter(  # a day early: a call begun before midnight, its
        parent__isnull=True, api_key_id__in=keys,  # children's charges after it
        created_at__gte=start - timedelta(days=1), created_at__lt=end).values("trace_id")
    charged = UsageRecord.objects.filter(
        Q(status=UsageRecord.Status.SETTLED)
        | Q(status=UsageRecord.Status.PENDING, billable=True),
        created_at__gte=start, created_at__lt=end, trace_id__in=roots)
    # Those whose cap keys lack the key (the others are in ``spent``, or will be). Summed by
    # PostgreSQL (a busy key's month is many rows: the account API reads this for an
    # uncapped key); SQLite has no "JSON array contains", so there they are summed here.
    if connection.vendor == "postgresql":
        return charged.exclude(cap_keys__contains=[key.pk]).aggregate(total=Coalesce(
            Sum(F("royalty") + F("compute")), 0))["total"]
    return sum(royalty + compute for cap_keys, royalty, compute
               in charged.values_list("cap_keys", "royalty", "compute").iterator(
                   chunk_size=5000) if key.pk not in cap_keys)


def usage_finish(*, invocation, succeeded: bool, platform_fault: bool = False,
                 closing: Update | None = None, also: list = ()) -> bool:
    """Close a finished call's usage: a failed call's hold is released at once; a successful
    one's hold shrinks to its real price at once (so a caller's credits are never tied up
    waiting for settlement) and the call waits, pending, for the batch that writes the
    ledger (``usage_settle_pending``: at once when Celery is eager, else a task this
    schedules). Only the payer's own row is touched here, never the platform's or the
    author's.

    ``closing``: the write that closes the call itself (its Invocation row, conditionally).
    The usage is closed in the same statement, and only if that write changed the row; the
    usage row too is closed only while still held, so a late duplicate changes nothing.
    ``also``: writes made in the same statement whatever ``closing`` changed (steps with
    ``after=None``, e.g. retiring the call's derived key). Returns whether ``closing``
    changed its row (True without one)."""
    refund = platform_fault and invocation.parent_id is None
    usage = _held_usage(invocation)
    capped = usage is not None and bool(usage.cap_month)
    # A refund, or a hold counted against key caps, takes several statements: one
    # transaction, its rows locked in the order admission and settlement lock them.
    with transaction.atomic() if refund or capped else nullcontext():
        first = [closing] if closing is not None else []  # in the usage's own chain
        if refund:
            # The call's own row first (as every closer takes it), then the accounts the
            # refund moves, in id order.
            if first or also:
                written = write_chain([*first, *also])
                if first and written[0] is None:
                    return False
            first, also = [], []
            _lock_accounts_of_trace(invocation.trace_id)
        # A refund's transaction moves credits back: it waits for the disk.
        done, usage_at = _close_usage(
            usage, first, also, succeeded=succeeded, run_ms=invocation.run_ms or 0.0,
            wait_for_disk=refund or settings.CALL_WRITES_WAIT_FOR_DISK)
        if first and done[0] is None:
            return False
        if usage_at is not None and done[usage_at] is not None and succeeded:
            transaction.on_commit(schedule_settlement)
        if refund:
            usage_refund_tree(
                trace_id=invocation.trace_id,
                reason=f"{invocation.algorithm_path} failed through the platform's fault "
                       f"({invocation.error_type or 'InternalError'})")
    return True


def _close_usage(usage: UsageRecord | None, steps: list, also: list, *, succeeded: bool,
                 run_ms: float, wait_for_disk: bool) -> tuple[list, int | None]:
    """Run ``steps`` and close the hold after them: the usage row (only while held), then
    the key caps' and the payer's reservations (only if the usage row was closed); ``also``
    last, in the same statement. Returns what ``write_chain`` wrote and the usage step's
    index."""
    if usage is None:
        return (write_chain([*steps, *also], wait_for_disk=wait_for_disk)
                if steps or also else []), None
    now = timezone.now()
    if succeeded:
        compute = min(compute_cost(run_ms), usage.held - usage.royalty)
        price = usage.royalty + compute
        excess = usage.held - price
        changes = {"compute": compute, "run_ms": math.ceil(run_ms), "held": price,
                   "status": UsageRecord.Status.PENDING, "billable": True, "finished_at": now}
    else:
        excess = usage.held
        changes = {"held": 0, "royalty": 0, "status": UsageRecord.Status.RELEASED,
                   "billable": False, "finished_at": now, "settled_at": now}
    # By id and request id (an id may be issued again after a crash of the database: call
    # writes need not wait for the disk); the hold's release runs only after this step.
    steps = [*steps, Update(UsageRecord, usage.pk, set=changes,
                            where={"status": UsageRecord.Status.HELD,
                                   "request_id": usage.request_id})]
    usage_at = len(steps) - 1
    if excess and not usage.cap_month:
        steps.append(Update(Account, usage.payer_id, add={"reserved": -excess}))
    done = write_chain([*steps, *also], wait_for_disk=wait_for_disk)
    if excess and usage.cap_month and done[usage_at] is not None:
        # Every cap row before the payer's row, as admission and settlement lock them: in
        # separate statements (one statement would finish a multi-row step only at its end).
        _cap_spend(usage, reserved=-excess)
        row_update(Account, usage.payer_id, add={"reserved": -excess})
    return done, usage_at


def usage_hold_of(usage: UsageRecord) -> dict:
    """What closing a call needs of its hold, carried with the call to its worker. (What
    its payer had left besides it once taken is ``usage.headroom``, carried beside it: a
    worker of an earlier release refuses a hold with a field it does not know.)"""
    return {"pk": usage.pk, "held": usage.held, "royalty": usage.royalty,
            "payer_id": usage.payer_id, "cap_keys": usage.cap_keys, "cap_month": usage.cap_month}


def usage_hold_spares_next_call(hold: dict | None, headroom: int | None) -> bool:
    """Whether a call's hold (``usage_hold_of``), kept a moment longer, is unlikely to
    refuse its payer's next call: counted against no key's cap, and with at least two more
    such holds left to its payer besides it when it was taken (``headroom``; room for the
    next call and one more taken meanwhile, of the same price). A call's close, which
    releases what its hold holds beyond its price, may trail its answer
    (``execution.services._answer_first``)."""
    if hold is None or headroom is None:  # not known
        return False
    return not hold.get("cap_month") and headroom >= 2 * hold["held"]


def _held_usage(invocation) -> UsageRecord | None:
    """The call's hold: as the worker was told it (``usage_hold``, set when the call was
    admitted), or read back."""
    hold = getattr(invocation, "usage_hold", None)
    if hold is not None:
        return model_instance(UsageRecord, {
            "id": hold["pk"], **{name: value for name, value in hold.items() if name != "pk"},
            "status": UsageRecord.Status.HELD, "request_id": invocation.request_id})
    return (UsageRecord.objects.filter(request_id=invocation.request_id,
                                       status=UsageRecord.Status.HELD)
            .only("pk", "request_id", "held", "royalty", "payer_id", "cap_keys", "cap_month")
            .first())


def _lock_accounts_of_trace(trace_id) -> None:
    rows = UsageRecord.objects.filter(trace_id=trace_id).values_list("payer_id", "author_id")
    ids = {platform_account(Account.Kind.REVENUE)}
    for payer_id, author_id in rows:
        ids.update(i for i in (payer_id, author_id) if i)
    list(Account.objects.select_for_update().filter(pk__in=ids).order_by("pk")
         .values_list("pk", flat=True))


def schedule_settlement() -> None:
    """Settle finished calls soon: now when Celery is eager, else by a run this process's
    scheduler sends (``SettlementScheduler``). Told after the call's close committed; costs
    the call's thread no round trip."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        usage_settle_pending()
        return
    settlement_scheduler().wanted()


SETTLE_SCHEDULED = "billing:settle-scheduled"


def send_settlement() -> bool:
    """Queue one settlement run, unless a run queued (by any process) has not started yet:
    that one will see every call closed before now. Returns whether one was sent.

    The run waits BILLING_SETTLE_DELAY_SECONDS, gathering the calls closing meanwhile into
    its batch. Sent, then marked: a process killed in between leaves a run queued, never a
    mark without a run (which kept every call closing after it out of the ledger until the
    next beat). Two processes may both send: runs skip each other's rows."""
    from django.core.cache import cache

    if cache.get(SETTLE_SCHEDULED):
        return False
    from marketplace.celery import app

    app.send_task("billing.settle", queue="billing",
                  countdown=settings.BILLING_SETTLE_DELAY_SECONDS)
    cache.set(SETTLE_SCHEDULED, 1, timeout=5)
    return True


class SettlementScheduler:
    """One per process: closing calls raise a flag (``wanted``), and a thread of its own
    sends the settlement runs (``send_settlement``), at most one per
    BILLING_SETTLE_DELAY_SECONDS. The calls' threads make no round trip for it: checking
    and marking in Redis, and sending, on every call's path, was a tenth of an execution
    worker's CPU under load (docs/benchmarks.md).

    Every call is settled by a run that starts after its close: the flag is raised after
    the close commits, and cleared only before a check that either sends a run or finds
    one not yet started, or while a run this thread sent cannot have started (its
    countdown). A process that exits with the flag up sends its run on the way out."""

    def __init__(self, send=send_settlement):
        self._send, self._wanted = send, threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wanted(self) -> None:
        self._wanted.set()
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="settlement-scheduler")
                    self._thread.start()

    def _run(self) -> None:
        delay = settings.BILLING_SETTLE_DELAY_SECONDS
        while True:
            self._wanted.wait()
            self._wanted.clear()  # the calls closed until now: this check covers them
            try:
                sent = self._send()
            except Exception:
                logger.exception("Could not schedule settlement; trying again")
                self._wanted.set()  # (the periodic reconcile settles them meanwhile)
                time.sleep(delay)
                continue
            if sent:
                # The run starts no sooner than its countdown: calls closing until (most
                # of) that has passed join it.
                time.sleep(delay * 0.8)
                self._wanted.clear()
            else:
                # Another's run is queued and may start any moment: calls closing from now
                # are checked again, at most every fifth of the delay.
                time.sleep(delay / 5)

    def flush(self) -> None:
        """At exit: the run for calls still waiting on the flag."""
        if self._wanted.is_set():
            try:
                self._send()
            except Exception:
                logger.exception("Could not schedule settlement at exit")


_scheduler: SettlementScheduler | None = None
_scheduler_lock = threading.Lock()


def settlement_scheduler() -> SettlementScheduler:
    global _scheduler
    if _scheduler is None:
        with _scheduler_lock:
            if _scheduler is None:
                _scheduler = SettlementScheduler()
                atexit.register(_scheduler.flush)
    return _scheduler


def usage_settle_pending(*, limit: int = 2000, trace_id=None, wait: bool = False) -> int:
    """Write finished calls into the ledger, exactly once each: a balanced transaction per
    billed call (its request id is unique among charges), the balances moved once per
    account for the whole batch, holds released. Rows another settler holds are skipped.
    ``wait``: take rows another settler holds too, once it lets go (for a refund, which must
    see every call of its tree). Returns how many calls it settled or released."""
    from django.core.cache import cache

    if trace_id is None:
        cache.delete(SETTLE_SCHEDULED)  # calls finishing from now on schedule another run
    done = 0
    while True:
        with transaction.atomic():
            if trace_id is None and not settings.CALL_WRITES_WAIT_FOR_DISK:
                # A batch lost to a crash of the database is settled again (its calls are
                # pending again); one that waited would hold the payers' rows, and every
                # admission behind them, through the disk's slowest flushes.
                commit_without_waiting_for_disk()
            settle = (_settle_batch_in_one_statement if connection.vendor == "postgresql"
                      else _settle_batch_with_orm)
            settled = settle(limit=limit, trace_id=trace_id, skip_locked=not wait)
            done += settled
        if settled < limit:
            return done


def _settle_batch_with_orm(*, limit: int, trace_id, skip_locked: bool) -> int:
    """One batch through the ORM (SQLite): its rows locked, then ``_settle_batch``. Returns
    how many calls it settled or released."""
    pending = UsageRecord.objects.select_for_update(skip_locked=skip_locked).filter(
        settled_at__isnull=True, status=UsageRecord.Status.PENDING)
    if trace_id is not None:
        pending = pending.filter(trace_id=trace_id)
    batch = list(pending.order_by("pk")[:limit])
    if batch:
        _settle_batch(batch)
    return len(batch)


def _settle_batch(batch: list[UsageRecord]) -> None:
    revenue = platform_account(Account.Kind.REVENUE)
    now = timezone.now()
    refunded_trees = set(UsageRecord.objects.filter(
        request_id__in={usage.trace_id for usage in batch}, tree_refunded=True)
        .values_list("trace_id", flat=True))
    for usage in batch:
        if usage.trace_id in refunded_trees:  # finished after its root failed: not charged
            usage.billable = False
    billed = [usage for usage in batch if usage.billable]
    charges = LedgerTransaction.objects.bulk_create([
        LedgerTransaction(kind=LedgerTransaction.Kind.USAGE,
                          memo=f"{usage.algorithm_path}/{usage.version_text}"[:300],
                          request_id=usage.request_id, trace_id=usage.trace_id)
        for usage in billed])
    entries, moves, release, spend = [], {}, {}, {}
    for usage, posted in zip(billed, charges):
        total = usage.royalty + usage.compute
        author_share = usage.royalty * settings.BILLING_AUTHOR_SHARE_PERCENT // 100
        for account_id, amount, kind in (
                (usage.payer_id, -total, Entry.Kind.CHARGE),
                (usage.author_id or revenue, author_share, Entry.Kind.ROYALTY),
                (revenue, usage.royalty - author_share, Entry.Kind.PLATFORM_FEE),
                (revenue, usage.compute, Entry.Kind.COMPUTE)):
            if amount:
                entries.append(Entry(transaction=posted, account_id=account_id, amount=amount,
                                     kind=kind, version_id=usage.version_id))
                moves[account_id] = moves.get(account_id, 0) + amount
    Entry.objects.bulk_create(entries)
    for usage in batch:
        release[usage.payer_id] = release.get(usage.payer_id, 0) + usage.held
        for key_id in usage.cap_keys if usage.cap_month else ():
            key = (key_id, usage.cap_month)
            held, spent = spend.get(key, (0, 0))
            spend[key] = (held + usage.held,
                          spent + (usage.royalty + usage.compute if usage.billable else 0))
    # Two UPDATEs for the batch (bulk_update's per-row CASE was a tenth of the worker's time).
    billed_ids = [usage.pk for usage in billed]
    if billed_ids:
        UsageRecord.objects.filter(pk__in=billed_ids).update(
            status=UsageRecord.Status.SETTLED, settled_at=now, billable=True,
            transaction_id=Subquery(LedgerTransaction.objects.filter(
                kind=LedgerTransaction.Kind.USAGE, request_id=OuterRef("request_id"))
                .values("pk")[:1]))
    released_ids = [usage.pk for usage in batch if not usage.billable]
    if released_ids:
        UsageRecord.objects.filter(pk__in=released_ids).update(
            status=UsageRecord.Status.RELEASED, settled_at=now, billable=False)
    _move_caps_and_balances(spend, moves, release)


def _move_caps_and_balances(spend: dict, moves: dict, release: dict) -> None:
    """What a settled batch moves: the key caps' holds and spending (``spend``, by key and
    month), then the accounts' balances and holds, each in id order as every posting locks
    them; the account rows last, so they stay locked only until the commit."""
    for (key_id, month), (held, spent) in sorted(spend.items()):
        KeySpend.objects.filter(key_id=key_id, month=month).update(
            reserved=F("reserved") - held, spent=F("spent") + spent)
    move_balances(moves, release)


def _settle_batch_in_one_statement(*, limit: int, trace_id, skip_locked: bool) -> int:
    """``_settle_batch_with_orm`` on PostgreSQL, its per-call work in one statement: the
    batch's rows locked, a charge and its entries per billed call, the rows settled or
    released; what the accounts and key caps must move comes back summed
    (``_move_caps_and_balances``). The ORM's way built a model instance for every row and
    entry: about half a millisecond of a settler's CPU per call. Returns how many calls
    it settled or released."""
    revenue = platform_account(Account.Kind.REVENUE)
    now = timezone.now()
    rows = statement_rows(_settle_sql(skip_locked, trace_id is not None), [
        *([trace_id] if trace_id is not None else []), limit,
        settings.BILLING_AUTHOR_SHARE_PERCENT, now, revenue, revenue, revenue, now, now])
    moves, release, spend, settled = {}, {}, {}, 0
    for kind, target, month, first, second in rows:
        if kind == "move":
            moves[target] = first
        elif kind == "release":
            release[target] = first
        elif kind == "spend":
            spend[(target, month)] = (first, second)
        else:
            settled = target
    _move_caps_and_balances(spend, moves, release)
    return settled


@functools.cache
def _settle_sql(skip_locked: bool, by_trace: bool) -> str:
    """The statement of ``_settle_batch_in_one_statement``; its parameters: the trace id
    (``by_trace``: a separate statement, so that its plan can use the trace's index), the
    batch's size, the author's share in percent, the time, the revenue account's id three
    times, the time twice."""
    usage, charge, entry = (model._meta.db_table for model in (UsageRecord, LedgerTransaction,
                                                               Entry))
    status, kinds = UsageRecord.Status, Entry.Kind
    lock = "FOR UPDATE SKIP LOCKED" if skip_locked else "FOR UPDATE"
    return f"""
WITH batch AS (
    SELECT id, request_id, trace_id, payer_id, author_id, cap_keys, cap_month, held, royalty,
           compute, billable, algorithm_path, version_text, version_id
    FROM {usage} WHERE settled_at IS NULL AND status = '{status.PENDING}'
        {"AND trace_id = CAST(%s AS uuid)" if by_trace else ""}
    ORDER BY id LIMIT CAST(%s AS integer) {lock}),
settling AS (
    SELECT batch.*,
           batch.billable AND NOT EXISTS (
               SELECT 1 FROM {usage} root
               WHERE root.request_id = batch.trace_id AND root.tree_refunded) AS bill,
           CAST(floor(CAST(batch.royalty AS numeric) * CAST(%s AS integer) / 100)
                AS bigint) AS author_share
    FROM batch),
charges AS (
    INSERT INTO {charge} (kind, memo, request_id, trace_id, created_at)
    SELECT '{LedgerTransaction.Kind.USAGE}', left(algorithm_path || '/' || version_text, 300),
           request_id, trace_id, CAST(%s AS timestamptz)
    FROM settling WHERE bill ORDER BY id
    RETURNING id, request_id),
lines AS (
    SELECT settling.request_id, settling.version_id, line.*
    FROM settling CROSS JOIN LATERAL (VALUES
        (1, payer_id, -(royalty + compute), '{kinds.CHARGE}'),
        (2, coalesce(author_id, CAST(%s AS bigint)), author_share, '{kinds.ROYALTY}'),
        (3, CAST(%s AS bigint), royalty - author_share, '{kinds.PLATFORM_FEE}'),
        (4, CAST(%s AS bigint), compute, '{kinds.COMPUTE}'))
        AS line (position, account_id, amount, kind)
    WHERE settling.bill AND line.amount <> 0),
entries AS (
    INSERT INTO {entry} (transaction_id, account_id, amount, kind, version_id, created_at)
    SELECT charges.id, lines.account_id, lines.amount, lines.kind, lines.version_id,
           CAST(%s AS timestamptz)
    FROM lines JOIN charges USING (request_id) ORDER BY charges.id, lines.position),
closed AS (
    UPDATE {usage} SET
        status = CASE WHEN settling.bill THEN '{status.SETTLED}' ELSE '{status.RELEASED}' END,
        settled_at = CAST(%s AS timestamptz), billable = settling.bill,
        transaction_id = charges.id
    FROM settling LEFT JOIN charges USING (request_id)
    WHERE {usage}.id = settling.id)
SELECT 'move', account_id, CAST(NULL AS text), CAST(sum(amount) AS bigint),
       CAST(NULL AS bigint) FROM lines GROUP BY account_id
UNION ALL
SELECT 'release', payer_id, NULL, CAST(sum(held) AS bigint), NULL FROM settling GROUP BY payer_id
UNION ALL
SELECT 'spend', CAST(key_id AS bigint), cap_month, CAST(sum(held) AS bigint),
       CAST(sum(CASE WHEN bill THEN royalty + compute ELSE 0 END) AS bigint)
FROM settling CROSS JOIN LATERAL jsonb_array_elements_text(cap_keys) AS capped (key_id)
WHERE cap_month <> '' GROUP BY 2, 3
UNION ALL
SELECT 'count', count(*), NULL, NULL, NULL FROM settling"""


@transaction.atomic(savepoint=False)
def usage_refund_tree(*, trace_id, reason: str) -> int:
    """Refund every settled call in a tree whose root failed through the platform's fault.
    The platform pays the refund from its revenue: the authors keep their royalties, since
    their algorithms did their work. Returns how many calls were refunded."""
    UsageRecord.objects.filter(request_id=trace_id).update(tree_refunded=True)  # the root
    usage_settle_pending(trace_id=trace_id, wait=True)  # the tree's finished calls, first
    refunded = 0
    revenue = platform_account(Account.Kind.REVENUE)
    for usage in UsageRecord.objects.select_for_update().filter(
            trace_id=trace_id, status=UsageRecord.Status.SETTLED).order_by("pk"):
        total = usage.total
        _cap_spend(usage, spent=-total)
        ledger_post(kind=LedgerTransaction.Kind.REFUND, memo=f"Refund: {reason}"[:300],
                    request_id=usage.request_id, trace_id=trace_id,
                    entries=[(revenue, -total, Entry.Kind.DEBIT, usage.version_id),
                             (usage.payer_id, total, Entry.Kind.CREDIT, usage.version_id)])
        usage.status = UsageRecord.Status.REFUNDED
        usage.save(update_fields=["status"])
        refunded += 1
    return refunded


def usage_reconcile() -> int:
    """The safety net behind the beat schedule: settle whatever is pending, and close the
    usage of any finished call still marked as running (closing a call does that in the same
    transaction, so this finds nothing unless rows were changed by hand). Returns how many
    records it closed or settled."""
    fixed = 0
    stale = UsageRecord.objects.filter(
        settled_at__isnull=True, status=UsageRecord.Status.HELD,
        invocation__status__in=["succeeded", "failed"])
    for usage in stale.select_related("invocation"):
        with transaction.atomic():
            usage_finish(invocation=usage.invocation,
                         succeeded=usage.invocation.status == "succeeded")
            fixed += 1
    return fixed + usage_settle_pending()
