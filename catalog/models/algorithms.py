"""Algorithms and the taxonomy they are browsed by."""
import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from marketplace.models import Organization, User
from marketplace.models.accounts import exactly_one_owner

ALGORITHM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def validate_algorithm_name(name: str) -> None:
    if not ALGORITHM_NAME.match(name or ""):
        raise ValidationError("Use 1 to 64 letters, digits or underscores, starting with a letter.")


class Category(models.Model):
    """An admin-defined shelf of the store (e.g. Text Analysis, Computer Vision)."""

    name = models.CharField(max_length=60, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.CharField(max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.SlugField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Algorithm(models.Model):
    """A named, owned algorithm. Its published versions are what callers call."""

    class Language(models.TextChoices):
        PYTHON3 = "python3-1", "Python 3"
        JAVASCRIPT = "javascript", "JavaScript (Node.js)"

    class SourceVisibility(models.TextChoices):
        OPEN = "open", "Open source"
        CLOSED = "closed", "Closed source"

    class NetworkAccess(models.TextChoices):
        ISOLATED = "isolated", "Isolated (platform API only)"
        FULL = "full", "Full internet access"

    class Callability(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="algorithms")
    owner_org = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="algorithms")
    # The namespace as typed when created; usernames and organization names never change.
    owner_name = models.CharField(max_length=40, db_index=True)
    name = models.CharField(max_length=64, validators=[validate_algorithm_name])
    label = models.CharField(max_length=100, blank=True)
    tagline = models.CharField(max_length=200, blank=True)
    summary = models.TextField(blank=True, help_text="Documentation, in Markdown.")
    summary_from_bundle = models.BooleanField(
        default=False, help_text="The docs came from the bundle's README.md and follow it.")
    language = models.CharField(max_length=20, choices=Language.choices, default=Language.PYTHON3)
    license = models.CharField(max_length=60, blank=True, default="apl")
    source_visibility = models.CharField(max_length=10, choices=SourceVisibility.choices,
                                         default=SourceVisibility.CLOSED)
    callability = models.CharField(max_length=10, choices=Callability.choices,
                                   default=Callability.PUBLIC,
                                   help_text="For the next published version.")
    royalty_microcredits = models.PositiveBigIntegerField(
        default=0, help_text="Per call, for the next published version.")
    network_access = models.CharField(max_length=10, choices=NetworkAccess.choices,
                                      default=NetworkAccess.ISOLATED)
    pipeline_enabled = models.BooleanField(default=False)
    categories = models.ManyToManyField(Category, blank=True, related_name="algorithms")
    tags = models.ManyToManyField(Tag, blank=True, related_name="algorithms")
    current_source = models.ForeignKey("catalog.SourceBundle", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    runner_idle_seconds = models.PositiveIntegerField(
        default=300, help_text="Seconds a runner stays warm without calls before it retires.")
    min_warm_runners = models.PositiveSmallIntegerField(
        default=0, help_text="Runners kept warm even when idle (reserved capacity).")
    calls_30d = models.PositiveBigIntegerField(
        default=0, help_text="Calls in the last 30 days, refreshed from invocation records.")
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_name", "name"]
        constraints = [
            models.UniqueConstraint(Lower("owner_name"), Lower("name"),
                                    name="algorithm_unique_path"),
            exactly_one_owner("algorithm_exactly_one_owner"),
        ]

    def __str__(self) -> str:
        return self.path

    @property
    def path(self) -> str:
        return f"{self.owner_name}/{self.name}"

    @property
    def display_name(self) -> str:
        return self.label or self.name
