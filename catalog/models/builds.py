"""Source bundles and the builds made from them."""
import uuid

from django.db import models

from marketplace.models import User

from .algorithms import Algorithm


class SourceBundle(models.Model):
    """An uploaded ``.tar.gz`` or ``.zip``, validated and stored through the sources storage."""

    class Format(models.TextChoices):
        TAR_GZ = "tar.gz", "tar.gz"
        ZIP = "zip", "zip"

    algorithm = models.ForeignKey(Algorithm, on_delete=models.CASCADE, related_name="bundles")
    storage_path = models.CharField(max_length=300)
    archive_format = models.CharField(max_length=10, choices=Format.choices)
    archive_sha256 = models.CharField(max_length=64)
    # SHA-256 over the unpacked files (paths and contents): the same files in any archive
    # give the same hash, and that hash names the build.
    content_hash = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveBigIntegerField()
    unpacked_bytes = models.PositiveBigIntegerField()
    file_count = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return f"{self.algorithm} bundle {self.content_hash[:12]}"


class Build(models.Model):
    """One build of a bundle: an isolated environment with the requirements installed."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in-progress", "In progress"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    build_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    algorithm = models.ForeignKey(Algorithm, on_delete=models.CASCADE, related_name="builds")
    bundle = models.ForeignKey(SourceBundle, on_delete=models.RESTRICT, related_name="builds")
    content_hash = models.CharField(max_length=64, db_index=True)
    language = models.CharField(max_length=20)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS,
                              db_index=True)
    logs = models.TextField(blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    artifact_path = models.CharField(max_length=300, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    reused_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    requested_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.algorithm} build {self.content_hash[:12]} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
