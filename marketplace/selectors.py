"""The site shell's reads. Views and other apps filter through these, not in place."""
from django.db.models import Q, QuerySet

from marketplace.errors import NotFoundError, PermissionDeniedError
from marketplace.models import ApiKey, AuditEvent, Membership, Organization, User

MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


def administers_organization(*, user, organization_id: int) -> bool:
    """Whether ``user`` is one of the organization's owners or admins."""
    return Membership.objects.filter(organization_id=organization_id, user_id=user.pk,
                                     role__in=MANAGER_ROLES).exists()


def organizations_for_user(*, user: User) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).distinct()


def organization_get_for_member(*, name: str, user: User) -> Organization:
    """The organization named ``name`` if ``user`` belongs to it; 404 for everyone else."""
    organization = Organization.objects.filter(name__iexact=name, memberships__user=user).first()
    if organization is None:
        raise NotFoundError("No such organization.")
    return organization


def membership_get(*, organization: Organization, user: User) -> Membership | None:
    return Membership.objects.filter(organization=organization, user=user).first()


def memberships_of(*, organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("user__username")


def api_keys_visible_to(*, user: User) -> QuerySet[ApiKey]:
    """The user's own keys and those of organizations they administer; not the short-lived
    keys the platform made for their calls' own calls (one per composed call, retired when
    it ends: the call tree shows each), which would bury the keys people made."""
    managed_orgs = Membership.objects.filter(user=user, role__in=MANAGER_ROLES).values(
        "organization_id"
    )
    return (
        ApiKey.objects.filter(Q(user=user) | Q(organization_id__in=managed_orgs),
                              serving__isnull=True)
        .select_related("organization", "user", "created_by")
        .order_by("revoked_at", "-created_at")
    )


def api_keys_manageable_by_key(*, key: ApiKey) -> QuerySet[ApiKey]:
    """What a key may list and revoke over the API: an organization key, only its
    organization's keys; a personal key, everything its user may manage."""
    if key.organization_id is not None:
        return api_keys_visible_to(user=key.created_by).filter(organization_id=key.organization_id)
    return api_keys_visible_to(user=key.user)


def api_key_get_visible(*, user: User, prefix: str) -> ApiKey:
    key = api_keys_visible_to(user=user).filter(prefix=prefix).first()
    if key is None:
        raise NotFoundError("No such API key.")
    return key


def user_get_by_username(*, username: str) -> User:
    user = User.objects.filter(username__iexact=username, is_active=True).first()
    if user is None:
        raise NotFoundError(f"No user named '{username}'.")
    return user


def audit_events_for_user(*, user: User, limit: int = 20) -> QuerySet[AuditEvent]:
    """What the user did, and what was done to their organizations, newest first."""
    orgs = Membership.objects.filter(user=user, role__in=MANAGER_ROLES).values("organization_id")
    return AuditEvent.objects.filter(Q(actor=user) | Q(organization_id__in=orgs))[:limit]


def api_key_for_console(*, user: User, owner: str, name: str) -> ApiKey:
    """The key the page console calls with: of the user's own active keys that may call
    ``owner/name`` (not the short-lived ones the platform made for running calls), the
    newest without a spending cap, else the capped one with the most room left this month.
    (The newest key alone made the console answer 402 as soon as the user made a key with
    a small cap, however many credits the account had.)"""
    from django.utils import timezone

    from billing.selectors import key_spend_this_month

    keys = ApiKey.objects.filter(user=user, revoked_at__isnull=True, serving__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())).order_by("-created_at")
    allowed = [key for key in keys if key.allows_algorithm(owner, name, None)
               or key.allows_algorithm(owner, name, "*")]
    if not allowed:
        raise PermissionDeniedError("You have no active API key that may call this algorithm: "
                                    "make one on the API keys page.")
    uncapped = [key for key in allowed if key.monthly_spend_cap is None]
    if uncapped:
        return uncapped[0]
    return max(allowed, key=lambda key: key.monthly_spend_cap - key_spend_this_month(key=key))
