"""Users, organizations and memberships."""
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from marketplace.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from marketplace.models import Membership, Organization, User

from .api_keys import IssuedKey, api_key_create
from .audit import audit_record

DEFAULT_KEY_NAME = "Default key"


@transaction.atomic
def user_create(*, username: str, email: str, password: str | None = None,
                is_staff: bool = False, is_superuser: bool = False) -> User:
    """Create a user after validating the shared namespace and the password."""
    user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_superuser)
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    return user


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> tuple[User, IssuedKey]:
    """Sign a person up: the user, their default key (every scope), an audit event. One
    account per email address."""
    if email and User.objects.filter(email__iexact=email.strip()).exists():
        raise ConflictError("An account with this email address exists already: log in.")
    user = user_create(username=username, email=email, password=password)
    audit_record(action="user.signup", actor=user, target=user)
    issued = api_key_create(created_by=user, name=DEFAULT_KEY_NAME)
    return user, issued


def _membership(organization: Organization, user: User) -> Membership | None:
    return Membership.objects.filter(organization=organization, user=user).first()


def _require_manager(organization: Organization, actor: User) -> None:
    membership = _membership(organization, actor)
    if membership is None:
        raise NotFoundError("No such organization.")  # non-members must not learn it exists
    if not membership.can_manage:
        raise PermissionDeniedError("Only owners and admins can change this organization.")


@transaction.atomic
def organization_create(*, actor: User, name: str, label: str = "", email: str = "",
                        url: str = "", contact_name: str = "",
                        org_type: str = Organization.Type.BASIC) -> Organization:
    """Create an organization with ``actor`` as its owner."""
    organization = Organization(name=name, label=label or name, email=email, url=url,
                                contact_name=contact_name, org_type=org_type)
    organization.full_clean()
    organization.save()
    Membership.objects.create(organization=organization, user=actor, role=Membership.Role.OWNER)
    audit_record(action="organization.create", actor=actor, target=organization,
                 organization=organization)
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, actor: User, **fields) -> Organization:
    """Change an organization's label, contact, url or type (never its name)."""
    _require_manager(organization, actor)
    allowed = {"label", "email", "url", "contact_name", "org_type"}
    unknown = set(fields) - allowed
    if unknown:
        raise InputError(f"Cannot change: {', '.join(sorted(unknown))}.")
    changed = {k: v for k, v in fields.items() if getattr(organization, k) != v}
    for field, value in changed.items():
        setattr(organization, field, value)
    organization.full_clean()
    organization.save()
    if changed:
        audit_record(action="organization.update", actor=actor, target=organization,
                     organization=organization, data={"changed": sorted(changed)})
    return organization


@transaction.atomic
def membership_add(*, organization: Organization, actor: User, user: User,
                   role: str = Membership.Role.MEMBER) -> Membership:
    """Add ``user`` to the organization; only owners may add owners."""
    _require_manager(organization, actor)
    _check_role_grant(organization, actor, role)
    if _membership(organization, user) is not None:
        raise ConflictError(f"{user.username} is already a member of {organization.name}.")
    membership = Membership.objects.create(organization=organization, user=user, role=role)
    audit_record(action="organization.member_add", actor=actor, target=membership,
                 organization=organization, data={"user": user.username, "role": role})
    return membership


@transaction.atomic
def membership_set_role(*, organization: Organization, actor: User, user: User,
                        role: str) -> Membership:
    """Change a member's role; an organization always keeps at least one owner."""
    _lock(organization)
    _require_manager(organization, actor)
    _check_role_grant(organization, actor, role)
    membership = _membership(organization, user)
    if membership is None:
        raise NotFoundError(f"{user.username} is not a member of {organization.name}.")
    if membership.role == role:
        return membership
    if membership.role == Membership.Role.OWNER:
        _check_role_grant(organization, actor, Membership.Role.OWNER)
        _keep_an_owner(organization, membership)
    old_role, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    audit_record(action="organization.member_role_change", actor=actor, target=membership,
                 organization=organization,
                 data={"user": user.username, "from": old_role, "to": role})
    return membership


@transaction.atomic
def membership_remove(*, organization: Organization, actor: User, user: User) -> None:
    """Remove a member (members may remove themselves); the last owner cannot leave."""
    _lock(organization)
    membership = _membership(organization, user)
    if actor.pk != user.pk:
        _require_manager(organization, actor)
    if membership is None:
        raise NotFoundError(f"{user.username} is not a member of {organization.name}.")
    if membership.role == Membership.Role.OWNER:
        if actor.pk != user.pk:
            _check_role_grant(organization, actor, Membership.Role.OWNER)
        _keep_an_owner(organization, membership)
    membership.delete()
    audit_record(action="organization.member_remove", actor=actor, target=user,
                 organization=organization, data={"user": user.username,
                                                  "role": membership.role})


def _lock(organization: Organization) -> None:
    """Serialise membership changes of one organization, so two owners demoting each other
    at the same moment cannot leave it with none."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _check_role_grant(organization: Organization, actor: User, role: str) -> None:
    if role not in Membership.Role.values:
        raise InputError(f"Unknown role '{role}': use owner, admin or member.")
    if role == Membership.Role.OWNER:
        membership = _membership(organization, actor)
        if membership is None or membership.role != Membership.Role.OWNER:
            raise PermissionDeniedError("Only owners can make or change owners.")


def _keep_an_owner(organization: Organization, leaving: Membership) -> None:
    owners = organization.memberships.filter(role=Membership.Role.OWNER).exclude(pk=leaving.pk)
    if not owners.exists():
        raise InputError("An organization must keep at least one owner.")
