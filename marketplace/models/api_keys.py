"""API keys: ``ak_<prefix>_<secret>``, stored as prefix + SHA-256 + last 4 characters.

The raw key exists only in the response that creates it; the database holds its hash.
"""
import copy
import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .accounts import Organization, User

# algo://*, algo://owner/*, algo://owner/name, algo://owner/name/*, algo://owner/name/1.2.3:
# a `*` only ever stands alone as the last segment, so "covers" is a plain prefix test.
ALGO_PATTERN = re.compile(
    r"^algo://(\*|[A-Za-z0-9_]+/(\*|[A-Za-z0-9_]+(/(\*|[A-Za-z0-9_.\-]+))?))$"
)


def pattern_covers(outer: str, inner: str) -> bool:
    """True when every algorithm path that ``inner`` admits is admitted by ``outer``."""
    return outer == inner or (outer.endswith("*") and inner.startswith(outer[:-1]))


class ApiKey(models.Model):
    """A key that callers send in ``Authorization``; it belongs to a user or an organization."""

    class DataAccess(models.TextChoices):
        NONE = "none", "No data access"
        READ = "read", "Read"
        READ_WRITE = "read-write", "Read and write"

    DATA_LEVELS = {DataAccess.NONE: 0, DataAccess.READ: 1, DataAccess.READ_WRITE: 2}

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    last4 = models.CharField(max_length=4)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys",
        help_text="The owner, for a personal key.",
    )
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys",
        help_text="The owner, for an organization's key.",
    )
    created_by = models.ForeignKey(
        User, null=True, on_delete=models.SET_NULL, related_name="created_api_keys"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
        help_text="The key that made this one over the API; revoking it revokes this one.",
    )
    algo_patterns = models.JSONField(
        default=list, help_text="Algorithms this key may call, e.g. algo://alice/*"
    )
    data_access = models.CharField(
        max_length=10, choices=DataAccess.choices, default=DataAccess.READ_WRITE
    )
    can_manage = models.BooleanField(default=True, help_text="May create and publish algorithms.")
    expires_at = models.DateTimeField(null=True, blank=True)
    monthly_spend_cap = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Microcredits this key may spend per calendar month; empty for no cap.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, organization__isnull=True)
                    | models.Q(user__isnull=True, organization__isnull=False)
                ),
                name="api_key_exactly_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (ak_{self.prefix}_…{self.last4})"

    def clean(self) -> None:
        super().clean()
        for pattern in self.algo_patterns or []:
            if not isinstance(pattern, str) or not ALGO_PATTERN.match(pattern):
                raise ValidationError({"algo_patterns": (
                    f"'{pattern}' is not a pattern: use algo://*, algo://owner/*, "
                    "algo://owner/name/* or algo://owner/name/version")})

    @property
    def masked(self) -> str:
        return f"ak_{self.prefix}_…{self.last4}"

    @property
    def owner_name(self) -> str:
        return self.organization.name if self.organization_id else self.user.username

    @property
    def is_derived(self) -> bool:
        """A key made for one running call's own calls (``api_key_create_derived``), or one
        of its kind: made from another key, without management, and bound to expire."""
        return self.parent_id is not None and not self.can_manage and self.expires_at is not None

    @property
    def acting_user(self) -> User | None:
        """Who the key acts as: its user; for an organization's key, its creator acting for
        the organization only (``acting_for_organization_id`` on a copy of the creator: the
        catalog then shows the key that organization's algorithms and public ones, not the
        creator's own private ones).

        A call's key's user is marked ``acting_for_a_call`` (a copy): the algorithm holding
        it was written by someone else, so the catalog shows it and lets it call only what
        everyone may (public versions; never the caller's private algorithms, builds or
        build hashes), and it never counts as a manager (no stdout, no traces)."""
        if self.organization_id is None:
            user = self.user
        elif self.created_by is None:
            return None
        else:
            user = copy.copy(self.created_by)
            user.acting_for_organization_id = self.organization_id
        if self.made_for_a_call:
            user = copy.copy(user)
            user.acting_for_a_call = True
        return user

    @property
    def made_for_a_call(self) -> bool:
        """A key the platform made for one running call's own calls: of the derived shape
        (``is_derived``, which a person's expiring call-only key made over the API also has)
        and named by that call. One query, for derived-shaped keys only, remembered."""
        if not self.is_derived:
            return False
        if not hasattr(self, "_made_for_a_call"):
            self._made_for_a_call = type(self).objects.filter(
                pk=self.pk, serving__isnull=False).exists()
        return self._made_for_a_call

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    def allows_algorithm(self, owner: str, name: str, version: str | None = None) -> bool:
        """True when one of the key's patterns covers ``algo://owner/name/version``."""
        target = f"algo://{owner}/{name}/{version or 'latest'}"
        bare = f"algo://{owner}/{name}"
        return any(p == bare or pattern_covers(p, target) for p in self.algo_patterns)

    def allows_data(self, level: str) -> bool:
        """True when the key's data access is at least ``level`` (``read`` / ``read-write``)."""
        return self.DATA_LEVELS[self.data_access] >= self.DATA_LEVELS[level]
