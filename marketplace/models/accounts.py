"""Users and organizations: the owners of algorithms, data and API keys."""
import uuid

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from marketplace.namespaces import namespace_is_taken, validate_namespace_name


class User(AbstractUser):
    """A person. Their username is a namespace shared with organization names."""

    username = models.CharField(
        max_length=40,
        unique=True,
        validators=[validate_namespace_name],
        help_text="2–40 letters, digits or underscores. It prefixes your algorithms' paths.",
        error_messages={"unique": "That name is taken."},
    )
    email = models.EmailField("email address")

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]

    def clean(self) -> None:
        super().clean()
        if self.username and namespace_is_taken(self.username, exclude_user_id=self.pk):
            raise ValidationError({"username": "That name is taken."})


class Organization(models.Model):
    """A team that owns algorithms, data and keys together; its name is a namespace."""

    class Type(models.TextChoices):
        BASIC = "basic", "Basic"
        PRO = "pro", "Pro"

    # Stable ids for the official client's `get_org_types` / `type_id` round trip.
    TYPE_IDS = {
        Type.BASIC: "5b7d0a7e-0b9c-4c8e-9f41-1f0d3c6a0001",
        Type.PRO: "5b7d0a7e-0b9c-4c8e-9f41-1f0d3c6a0002",
    }

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=40, unique=True, validators=[validate_namespace_name])
    label = models.CharField(max_length=100, blank=True)
    contact_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    url = models.URLField(blank=True)
    org_type = models.CharField(max_length=10, choices=Type.choices, default=Type.BASIC)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(User, through="Membership", related_name="organizations")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="organization_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.name and namespace_is_taken(self.name, exclude_org_id=self.pk):
            raise ValidationError({"name": "That name is taken."})


class Membership(models.Model):
    """A user's place in an organization."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique"),
        ]
        ordering = ["organization__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


def exactly_one_owner(name: str) -> models.CheckConstraint:
    """For models owned by a user or an organization (``owner_user`` / ``owner_org``):
    exactly one of the two is set."""
    return models.CheckConstraint(
        condition=(models.Q(owner_user__isnull=False, owner_org__isnull=True)
                   | models.Q(owner_user__isnull=True, owner_org__isnull=False)),
        name=name)
