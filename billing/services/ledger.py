"""Accounts and balanced ledger transactions."""
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from billing.models import Account, Entry, LedgerTransaction
from marketplace.errors import InputError
from marketplace.models import ApiKey, Organization, User
from marketplace.services import audit_record

def platform_account(kind: str) -> int:
    """The id of one of the platform's own accounts (opened on first use). Not cached in
    the process: a cached id would outlive a database that was reset under it."""
    account_id = Account.objects.filter(kind=kind).values_list("pk", flat=True).first()
    if account_id is None:
        try:
            with transaction.atomic():
                account_id = Account.objects.create(kind=kind).pk
        except IntegrityError:
            account_id = Account.objects.get(kind=kind).pk
    return account_id


@transaction.atomic
def account_for_user(user: User) -> Account:
    """The user's account; opening it grants the sign-up credits (once: the row is unique)."""
    try:
        return Account.objects.get(user=user)
    except Account.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            account = Account.objects.create(kind=Account.Kind.USER, user=user,
                                             holder_name=user.username)
    except IntegrityError:  # opened at the same moment by someone else
        return Account.objects.get(user=user)
    if settings.BILLING_SIGNUP_GRANT:
        ledger_post(kind=LedgerTransaction.Kind.GRANT, memo="Free credits on sign-up",
                    entries=[(platform_account(Account.Kind.GRANTS),
                              -settings.BILLING_SIGNUP_GRANT, Entry.Kind.DEBIT, None),
                             (account.pk, settings.BILLING_SIGNUP_GRANT, Entry.Kind.CREDIT,
                              None)])
        account.refresh_from_db()
    return account


def account_for_organization(organization: Organization) -> Account:
    """An organization's account (no free credits: its members fund it by buying packs)."""
    try:
        with transaction.atomic():
            account, _ = Account.objects.get_or_create(
                kind=Account.Kind.ORGANIZATION, organization=organization,
                defaults={"holder_name": organization.name})
    except IntegrityError:
        account = Account.objects.get(organization=organization)
    return account


def account_for_key(key: ApiKey) -> Account:
    """Who pays for calls made with ``key``: its organization, else its user."""
    if key.organization_id:
        return account_for_organization(key.organization)
    return account_for_user(key.user)


def ledger_post(*, kind: str, entries: list[tuple[int, int, str, int | None]], memo: str = "",
                request_id=None, trace_id=None, created_by: User | None = None,
                release: dict[int, int] | None = None) -> LedgerTransaction:
    """Write one balanced transaction and move the balances with it.

    ``entries`` are (account id, signed microcredits, entry kind, version id); they must sum
    to zero. ``release`` lowers accounts' reserved amounts in the same UPDATE (a settled
    hold). Accounts are updated in id order, so concurrent postings never deadlock.
    """
    if sum(amount for _, amount, _, _ in entries) != 0:
        raise ValueError("A ledger transaction must balance.")
    release = release or {}
    with transaction.atomic(savepoint=False):
        posted = LedgerTransaction.objects.create(kind=kind, memo=memo[:300],
                                                  request_id=request_id, trace_id=trace_id,
                                                  created_by=created_by)
        Entry.objects.bulk_create([
            Entry(transaction=posted, account_id=account_id, amount=amount, kind=entry_kind,
                  version_id=version_id)
            for account_id, amount, entry_kind, version_id in entries if amount])
        moves: dict[int, int] = {}
        for account_id, amount, _, _ in entries:
            moves[account_id] = moves.get(account_id, 0) + amount
        move_balances(moves, release)
    return posted


def move_balances(moves: dict[int, int], release: dict[int, int] | None = None) -> None:
    """Apply summed entry amounts (and released holds) to account rows, one UPDATE per
    account, in id order, so concurrent postings never deadlock."""
    release = release or {}
    for account_id in sorted(set(moves) | set(release)):
        changes = {}
        if moves.get(account_id):
            changes["balance"] = F("balance") + moves[account_id]
        if release.get(account_id):
            changes["reserved"] = F("reserved") - release[account_id]
        if changes:
            Account.objects.filter(pk=account_id).update(**changes)


def adjustment_create(*, account: Account, amount: int, reason: str, actor: User) -> LedgerTransaction:
    """An operator's correction: a ledger entry against the adjustments account, audited."""
    reason = reason.strip()
    if not reason:
        raise InputError("An adjustment needs a reason.")
    if not amount:
        raise InputError("An adjustment must move some credits.")
    try:
        with transaction.atomic():
            posted = ledger_post(
                kind=LedgerTransaction.Kind.ADJUSTMENT, memo=reason, created_by=actor,
                entries=[(platform_account(Account.Kind.ADJUSTMENTS), -amount,
                          Entry.Kind.DEBIT if amount > 0 else Entry.Kind.CREDIT, None),
                         (account.pk, amount,
                          Entry.Kind.CREDIT if amount > 0 else Entry.Kind.DEBIT, None)])
            audit_record(action="billing.adjustment", actor=actor, target=account,
                         organization=account.organization,
                         data={"microcredits": amount, "reason": reason,
                               "transaction": posted.pk})
    except IntegrityError:
        raise InputError("That would take the account below zero (or below what its running "
                         "calls hold).") from None
    return posted
