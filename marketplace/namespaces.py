"""The one namespace that usernames and organization names share.

Both prefix algorithm paths (``algo://alice/sentiment``, ``data://acme/photos``), so a name
taken by a user cannot be an organization's and vice versa, whatever its letter case.
"""
import re

from django.core.exceptions import ValidationError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]{2,40}$")

# Words that name parts of the site or the API, or that could mislead a caller.
RESERVED_NAMES = frozenset(
    """
    about account accounts admin administrator algo algorithmia algorithms algos algostore
    anonymous api apps billing blog browse catalog dashboard data datastore docs everyone
    execution explore health healthz help home keys login logout media me my null none
    official orgs organization organizations perm platform pricing private public publish
    root search security session settings signup sso static status support system team
    requests temp terms user users v1 v2 webhooks www ws
    """.split()
)


def validate_namespace_name(name: str) -> None:
    """Raise ValidationError unless ``name`` is well formed and not reserved."""
    if not NAME_PATTERN.match(name or ""):
        raise ValidationError(
            "Use 2 to 40 characters: letters, digits and underscores only.", code="invalid_name"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValidationError(f"'{name}' is reserved; choose another name.", code="reserved_name")


def namespace_is_taken(name: str, *, exclude_user_id=None, exclude_org_id=None) -> bool:
    """True when a user or an organization already holds ``name`` (case-insensitively)."""
    from marketplace.models import Organization, User

    users = User.objects.filter(username__iexact=name)
    orgs = Organization.objects.filter(name__iexact=name)
    if exclude_user_id is not None:
        users = users.exclude(pk=exclude_user_id)
    if exclude_org_id is not None:
        orgs = orgs.exclude(pk=exclude_org_id)
    return users.exists() or orgs.exists()
