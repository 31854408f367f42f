"""Invocations: one row per call, with its place in the call tree and where the time went."""
import uuid

from django.db import models

from catalog.models import Algorithm, AlgorithmVersion, Build
from marketplace.models import ApiKey, User


class Invocation(models.Model):
    """One call. Written twice on every call's hot path (admitted, closed), so it carries no
    database-level foreign keys (each costs a lookup and a row lock on the referenced row at
    every insert; Django applies SET_NULL itself) and only the indexes its readers use."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    FINISHED = (Status.SUCCEEDED, Status.FAILED)

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trace_id = models.UUIDField(db_index=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="children", db_constraint=False)
    depth = models.PositiveSmallIntegerField(default=0)
    algorithm = models.ForeignKey(Algorithm, null=True, on_delete=models.SET_NULL,
                                  related_name="invocations", db_constraint=False,
                                  db_index=False)  # (algorithm, created_at) below serves it
    algorithm_path = models.CharField(max_length=120)
    version = models.ForeignKey(AlgorithmVersion, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="invocations",
                                db_constraint=False, db_index=False)  # (version, status)
    version_text = models.CharField(max_length=80, help_text="The version run, or its build hash.")
    build = models.ForeignKey(Build, null=True, on_delete=models.SET_NULL, related_name="+",
                              db_constraint=False)
    caller = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+",
                               db_constraint=False)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+", db_constraint=False)
    derived_key = models.OneToOneField(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="serving",
        help_text="The short-lived key this call's algorithm uses for its own calls.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    options = models.JSONField(default=dict)
    input_content_type = models.CharField(max_length=10)
    input_bytes = models.PositiveBigIntegerField(default=0)
    output_bytes = models.PositiveBigIntegerField(default=0)
    error_type = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="The finished envelope.")
    stdout = models.TextField(blank=True)
    queue_ms = models.FloatField(null=True, blank=True)
    cold_start_ms = models.FloatField(null=True, blank=True)
    run_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["algorithm", "created_at"]),
                   models.Index(fields=["version", "status"]),
                   # Calls not yet closed, for the reaper: a few rows, however long the log.
                   models.Index(fields=["created_at"], name="invocation_open_idx",
                                condition=models.Q(status__in=["queued", "running"]))]

    def __str__(self) -> str:
        return f"{self.algorithm_path}/{self.version_text} {self.request_id} ({self.status})"


class WebhookDelivery(models.Model):
    """A completion callback: each attempt's outcome, visible to the caller."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    invocation = models.OneToOneField(Invocation, on_delete=models.CASCADE,
                                      related_name="webhook")
    url = models.URLField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
