"""The append-only audit log.

Rows are never updated or deleted through the ORM, and they survive what they describe:
foreign keys are ``SET_NULL`` and the names they pointed at are copied into the row.
"""
from django.db import models

from .accounts import Organization, User


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an append-only row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: D102
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")

    def delete(self):  # noqa: D102
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")


class AppendOnlyModel(models.Model):
    """Rows are inserted once and never updated or deleted through the ORM (the audit log,
    the billing ledger): corrections are new rows."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding or self.pk is not None:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
        kwargs["force_insert"] = True  # never an UPDATE, whatever the caller set
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")


class AuditEvent(AppendOnlyModel):
    """One thing that happened: who did what to which object, from where, when."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    organization_name = models.CharField(max_length=40, blank=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action}"
