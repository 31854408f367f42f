"""Issuing, authenticating and revoking API keys (STYLE.md item 14)."""
import copy
import functools
import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.epoch_cache import EpochCache
from marketplace.errors import AuthError, InputError, PermissionDeniedError
from marketplace.models import ApiKey, Membership, Organization, User
from marketplace.models.api_keys import pattern_covers
from marketplace.row_update import Insert, RowReader, Update, statement_rows, write_chain

from .audit import audit_record

KEY_PREFIX_LENGTH = 10
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
ALL_ALGORITHMS = "algo://*"


@dataclass(frozen=True)
class IssuedKey:
    """A newly made key and its raw secret, which exists nowhere else."""

    key: ApiKey
    raw: str


@dataclass(frozen=True)
class KeyScopes:
    algo_patterns: list[str]
    data_access: str = ApiKey.DataAccess.READ_WRITE
    can_manage: bool = True

    @classmethod
    def everything(cls) -> "KeyScopes":
        return cls(algo_patterns=[ALL_ALGORITHMS])


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _split(raw: str) -> tuple[str, str] | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != "ak" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def parse_scopes(tokens: list[str]) -> KeyScopes:
    """Parse ``algo://…`` patterns, ``data:none|read|read-write`` and ``manage``.

    Missing algorithm patterns mean none may be called; missing data access means none.
    """
    patterns, data_access, manage = [], ApiKey.DataAccess.NONE, False
    for token in tokens:
        if token.startswith("algo://"):
            patterns.append(token)
        elif token.startswith("data:") and token[5:] in ApiKey.DataAccess.values:
            data_access = token[5:]
        elif token == "manage":
            manage = True
        else:
            raise InputError(
                f"Unknown scope '{token}': use algo://owner/name/* patterns, "
                "data:none, data:read, data:read-write or manage."
            )
    return KeyScopes(algo_patterns=patterns, data_access=data_access, can_manage=manage)


def _can_manage_org(user: User, organization: Organization) -> bool:
    from marketplace.selectors import administers_organization

    return administers_organization(user=user, organization_id=organization.pk)


@transaction.atomic
def api_key_create(
    *,
    created_by: User,
    name: str,
    organization: Organization | None = None,
    scopes: KeyScopes | None = None,
    expires_at: datetime | None = None,
    parent: ApiKey | None = None,
    monthly_spend_cap: int | None = None,
) -> IssuedKey:
    """Make a key for ``created_by`` (or for an organization they administer)."""
    scopes = scopes or KeyScopes.everything()
    _check_cap(monthly_spend_cap)
    if organization is not None and not _can_manage_org(created_by, organization):
        raise PermissionDeniedError("Only an organization's owners and admins can make its keys.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InputError("expires_at must be in the future.")
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(KEY_PREFIX_LENGTH))
    raw = f"ak_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=name.strip() or "API key",
        prefix=prefix,
        key_hash=hash_key(raw),
        last4=raw[-4:],
        user=None if organization else created_by,
        organization=organization,
        created_by=created_by,
        algo_patterns=list(scopes.algo_patterns),
        data_access=scopes.data_access,
        can_manage=scopes.can_manage,
        expires_at=expires_at,
        parent=parent,
        monthly_spend_cap=monthly_spend_cap,
    )
    key.full_clean()
    key.save()
    audit_record(
        action="api_key.create", actor=created_by, target=key, organization=organization,
        data={"prefix": prefix, "scopes": list(scopes.algo_patterns),
              "data_access": scopes.data_access, "can_manage": scopes.can_manage,
              "monthly_spend_cap": monthly_spend_cap},
    )
    return IssuedKey(key=key, raw=raw)


MAX_CAP = 10 ** 18  # microcredits: a trillion credits, well inside a 64-bit column


def _check_cap(cap: int | None) -> None:
    if cap is not None and (not isinstance(cap, int) or not 0 <= cap <= MAX_CAP):
        raise InputError("monthly_spend_cap_microcredits must be a whole number of "
                         f"microcredits from 0 to {MAX_CAP} (or null for no cap).")


def api_key_set_spend_cap(*, key: ApiKey, cap: int | None, actor: User,
                          by_key: ApiKey | None = None) -> ApiKey:
    """Set or clear a key's monthly spending cap (microcredits); audited. A cap set counts
    what the key was charged since the month began (``billing.key_spend_recount``).

    ``by_key``: the key asking, over the API. A key can never change its own cap nor the cap
    of a key it was made from (a capped key could otherwise lift its own limit); the keys it
    made spend out of its cap anyway. People on the keys page can change any key they
    administer.
    """
    _check_cap(cap)
    ancestor = by_key
    while by_key is not None and ancestor is not None:
        if ancestor.pk == key.pk:
            raise PermissionDeniedError("A key cannot change its own spending cap, nor that of "
                                        "a key it was made from; do it on the API keys page.")
        ancestor = ApiKey.objects.filter(pk=ancestor.parent_id).first() if ancestor.parent_id \
            else None
    if key.parent_id and key.parent.monthly_spend_cap is not None and (
            cap is None or cap > key.parent.monthly_spend_cap):
        raise PermissionDeniedError("A key made by a capped key cannot have a higher cap "
                                    f"than it ({key.parent.monthly_spend_cap} microcredits).")
    from billing.services import key_spend_recount

    before = key.monthly_spend_cap
    with transaction.atomic():
        if cap is not None:  # this month's spend so far counts against it
            key_spend_recount(key=key)
        ApiKey.objects.filter(pk=key.pk).update(monthly_spend_cap=cap)
        authenticated_keys.bump_on_commit()
        key.monthly_spend_cap = cap
        audit_record(action="api_key.spend_cap", actor=actor, target=key,
                     organization=key.organization, data={"before": before, "after": cap})
    return key


def api_key_create_from_key(
    *, parent: ApiKey, name: str, scopes: KeyScopes, expires_at: datetime | None = None,
    monthly_spend_cap: int | None = None,
) -> IssuedKey:
    """Make a key over the API: never with more power than the key that asks for it (nor a
    higher spending cap: a capped key's keys inherit its cap unless given a lower one; a
    higher one is refused, as changing a cap to one is, not quietly lowered)."""
    if not parent.can_manage:
        raise PermissionDeniedError("This key may not manage keys (it lacks the manage scope).")
    if not parent.allows_data(scopes.data_access):
        raise PermissionDeniedError("A new key cannot have more data access than this key.")
    for pattern in scopes.algo_patterns:
        if not any(pattern_covers(p, pattern) for p in parent.algo_patterns):
            raise PermissionDeniedError(f"This key cannot grant '{pattern}'.")
    if parent.expires_at and (expires_at is None or expires_at > parent.expires_at):
        expires_at = parent.expires_at
    if parent.monthly_spend_cap is not None:
        if monthly_spend_cap is None:
            monthly_spend_cap = parent.monthly_spend_cap
        elif monthly_spend_cap > parent.monthly_spend_cap:
            raise PermissionDeniedError(
                "A key made by a capped key cannot have a higher cap than it "
                f"({parent.monthly_spend_cap} microcredits).")
    return api_key_create(
        created_by=parent.created_by, name=name, organization=parent.organization,
        scopes=scopes, expires_at=expires_at, parent=parent,
        monthly_spend_cap=monthly_spend_cap,
    )


def api_key_revoke(*, key: ApiKey, actor: User, as_operator: bool = False) -> ApiKey:
    """Revoke a key at once; revoking twice is harmless and records nothing new.

    ``as_operator`` is for staff acting from the admin on someone else's key.
    """
    if not (as_operator and actor.is_staff) and not api_key_can_administer(key=key, user=actor):
        raise PermissionDeniedError("You cannot revoke this key.")
    if key.revoked_at is None:
        _revoke_with_descendants(key, actor=actor, as_operator=as_operator)
    return key


@transaction.atomic
def _revoke_with_descendants(key: ApiKey, *, actor: User, as_operator: bool) -> None:
    """A key made by another key dies with it: a stolen key's offspring are revoked too."""
    now = timezone.now()
    pending = [key]
    while pending:
        current = pending.pop()
        if current.revoked_at is None:
            current.revoked_at = now
            current.save(update_fields=["revoked_at"])
            audit_record(action="api_key.revoke", actor=actor, target=current,
                         organization=current.organization,
                         data={"prefix": current.prefix, "by_operator": as_operator,
                               **({"with_parent": key.prefix} if current is not key else {})})
        pending.extend(current.children.filter(revoked_at__isnull=True))


def api_key_can_administer(*, key: ApiKey, user: User) -> bool:
    if key.user_id is not None:
        return key.user_id == user.pk
    return _can_manage_org(user, key.organization)


# Keys as authenticated, per process, by the hash of the whole key. Exact: every change to
# a key, a user, an organization or a membership bumps the epoch after it commits (signals,
# plus api_key_set_spend_cap, which writes with UPDATE), so a revoked key stops working at
# once in every process; expiry is checked on every use. Two writes bump nothing: a new key
# (no process can hold an answer for it) and a derived key's retirement (derived keys are
# never cached: each lives for one call, and bumping for each would make every process
# forget every key at every composed call).
authenticated_keys = EpochCache("api-keys", ttl_seconds=60.0)


def is_derived(key: ApiKey) -> bool:
    """``ApiKey.is_derived``: a key made for one running call's own calls, or one of its kind."""
    return key.is_derived


def api_key_authenticate(*, raw: str) -> ApiKey:
    """Return the active key whose secret is ``raw``, or raise AuthError."""
    digest = hash_key(raw.strip())
    epoch = authenticated_keys.epoch()
    cached = authenticated_keys.get(digest, epoch)
    if cached is not None:
        if cached.is_expired:
            raise AuthError("This API key has expired.")
        api_key_mark_used(key=cached)
        return copy.copy(cached)  # callers may set attributes; the cached one stays as read
    key = _authenticate_uncached(raw, digest)
    if not is_derived(key):
        authenticated_keys.put(digest, epoch, key)
    return copy.copy(key)


def _authenticate_uncached(raw: str, digest: str) -> ApiKey:
    parts = _split(raw.strip())
    key = _key_by_prefix(parts[0]) if parts is not None else None
    # Constant-time comparison of the whole key's hash, never of the raw secret.
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        raise AuthError("Invalid API key.")
    if key.is_revoked:
        raise AuthError("This API key has been revoked.")
    if key.is_expired:
        raise AuthError("This API key has expired.")
    acting_user = key.acting_user
    if acting_user is None or not acting_user.is_active:
        raise AuthError("This API key's account is disabled.")
    if key.organization_id is not None and not key.creator_manages_org:
        # An organization key speaks for its maker; it stops when they stop running the org.
        raise AuthError("This key's creator no longer administers its organization.")
    if not is_derived(key):  # a derived key's one use is its call's child, in the call tree
        api_key_mark_used(key=key)
    return key


# The key's row, then its user's, organization's, creator's and parent's (the caps a call
# counts against start at the parent: billing), each absent where the key has none.
_KEY_JOINS = (("k", ApiKey, None), ("u", User, "user"), ("o", Organization, "organization"),
              ("c", User, "created_by"), ("p", ApiKey, "parent"))


def _key_by_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix, with its user, organization, creator and parent, whether
    its creator administers its organization (``creator_manages_org``) and whether a call
    names it as its own key (``made_for_a_call``): one
    statement whose text is built once. The ORM compiled the same query (four joins, an
    EXISTS, an ordering) for every key it checked: 4.5 ms of CPU on this machine's slow
    phase, against 0.3 ms of database time, and a derived key, new with every composed
    call, is never cached."""
    sql, readers = _key_query()
    rows = statement_rows(sql, [Membership.Role.OWNER, Membership.Role.ADMIN, prefix])
    if not rows:
        return None
    row, start, found = rows[0], 0, []
    for reader in readers:
        found.append(reader.instance(row[start:start + len(reader.columns)]))
        start += len(reader.columns)
    key = found[0]
    for (_alias, _model, relation), related in zip(_KEY_JOINS[1:], found[1:]):
        setattr(key, relation, related)  # None too: read, and known to be absent
    key.creator_manages_org = bool(row[start])
    key._made_for_a_call = bool(row[start + 1])  # ApiKey.made_for_a_call, from here
    return key


@functools.cache
def _key_query() -> tuple[str, list[RowReader]]:
    """``_key_by_prefix``'s statement (``%s``: the two administering roles, the prefix) and
    a reader per joined model."""
    from django.db import connection

    quote, readers, joins = connection.ops.quote_name, [], []
    column = {name: quote(ApiKey._meta.get_field(name).column)
              for name in ("user", "organization", "created_by", "parent", "prefix")}
    for alias, model, relation in _KEY_JOINS:
        readers.append(RowReader(model, alias))
        if relation is not None:
            joins.append(f"LEFT JOIN {quote(model._meta.db_table)} {alias} ON "
                         f"{alias}.{quote(model._meta.pk.column)} = k.{column[relation]}")
    member = {name: quote(Membership._meta.get_field(name).column)
              for name in ("organization", "user", "role")}
    manages = (f"EXISTS (SELECT 1 FROM {quote(Membership._meta.db_table)} m WHERE "
               f"m.{member['organization']} = k.{column['organization']} AND "
               f"m.{member['user']} = k.{column['created_by']} AND "
               f"m.{member['role']} IN (%s, %s))")
    from execution.models import Invocation

    derived_key = quote(Invocation._meta.get_field("derived_key").column)
    serves = (f"EXISTS (SELECT 1 FROM {quote(Invocation._meta.db_table)} i WHERE "
              f"i.{derived_key} = k.{quote(ApiKey._meta.pk.column)})")
    columns = ", ".join(name for reader in readers for name in reader.columns)
    sql = (f"SELECT {columns}, {manages}, {serves} FROM {quote(ApiKey._meta.db_table)} k "
           f"{' '.join(joins)} WHERE k.{column['prefix']} = %s")
    return sql, readers


_last_marked: dict[int, float] = {}


def api_key_mark_used(*, key: ApiKey) -> None:
    """Record use at most once per API_KEY_LAST_USED_RESOLUTION seconds per process, not on
    every request (and without a network round trip on the request path)."""
    now = time.monotonic()
    if now - _last_marked.get(key.pk, -1e9) < settings.API_KEY_LAST_USED_RESOLUTION:
        return
    _last_marked[key.pk] = now
    if len(_last_marked) > 100_000:  # bounded: forget the oldest half
        for stale in sorted(_last_marked, key=_last_marked.get)[:50_000]:
            _last_marked.pop(stale, None)
    moment = timezone.now()
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=moment)
    key.last_used_at = moment


def api_key_create_derived(*, parent: ApiKey, name: str, lifetime_seconds: float,
                           then: Update | None = None) -> IssuedKey | None:
    """A short-lived key for an algorithm's own calls while it serves ``parent``'s call.

    It may call what the parent may call and read data (only what the Data API lets a
    running algorithm read: public collections and its owner's "my algorithms" ones, never
    the caller's private data), nothing else (no writes, no management); it belongs to
    the same owner (so the root caller pays for the whole tree), and is retired when the
    call ends. Not audited one by one: the invocation tree records each use.

    ``then``: a write made with the key, in the same statement (its ``links`` name the key
    as step 0). If it changes nothing, no key is issued (None): the one written is retired.
    """
    expires_at = timezone.now() + timedelta(seconds=lifetime_seconds)
    if parent.expires_at and parent.expires_at < expires_at:
        expires_at = parent.expires_at
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(KEY_PREFIX_LENGTH))
    raw = f"ak_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(  # by ids: the parent's user and organization are not read
        name=name[:100], prefix=prefix, key_hash=hash_key(raw), last4=raw[-4:],
        user_id=parent.user_id, organization_id=parent.organization_id,
        created_by_id=parent.created_by_id,
        algo_patterns=list(parent.algo_patterns),
        data_access=(ApiKey.DataAccess.READ if parent.allows_data(ApiKey.DataAccess.READ)
                     else ApiKey.DataAccess.NONE),
        can_manage=False, expires_at=expires_at, parent=parent)
    # Written without post_save, whose receiver does nothing for a new key; a call's own
    # write, so as the call's other writes (CALL_WRITES_WAIT_FOR_DISK).
    written = write_chain([Insert(key), *([then] if then is not None else [])],
                          wait_for_disk=settings.CALL_WRITES_WAIT_FOR_DISK)
    if then is not None and written[1] is None:
        api_key_retire(key=key)
        return None
    return IssuedKey(key=key, raw=raw)


def _retiring(key: ApiKey) -> Update:
    # By id and prefix: a derived key need not wait for the disk when it is written, so after
    # a crash of the database its id may have been issued again, to another key.
    return Update(ApiKey, key.pk, set={"revoked_at": timezone.now()},
                  where={"prefix": key.prefix}, check=("revoked_at IS NULL", []), after=None)


def api_key_retiring(*, key: ApiKey) -> Update:
    """``api_key_retire`` of a derived key as a step of another write's statement (it runs
    whatever the steps before it changed)."""
    if not is_derived(key):
        raise ValueError("Only a derived key is retired in another write's statement.")
    return _retiring(key)


def api_key_retire(*, key: ApiKey) -> None:
    """End a derived key at once (its call finished). Derived keys are never cached, so
    no process needs telling."""
    write_chain([_retiring(key)])
    if not is_derived(key):
        authenticated_keys.bump_on_commit()


def webhook_secret(user: User) -> str:
    """The user's secret for verifying Algostore's webhook signatures. Derived from the
    platform's secret key, so nothing per user is stored; shown on the API keys page."""
    return hmac.new(settings.SECRET_KEY.encode(),
                    f"webhook:{user.pk}:{user.date_joined.isoformat()}".encode(),
                    hashlib.sha256).hexdigest()
