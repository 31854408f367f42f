"""Recording audit events. Other apps call ``audit_record`` for their own events."""
from typing import Any

from django.db import models

from marketplace.audit_context import current_audit_context
from marketplace.models import AuditEvent, Organization, User


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    target: models.Model | None = None,
    organization: Organization | None = None,
    data: dict[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> AuditEvent:
    """Append one event. IP and user agent default to those of the current request."""
    context = current_audit_context()
    actor = actor if actor is not None and actor.is_authenticated else None
    event = AuditEvent(
        action=action,
        actor=actor,
        actor_username=actor.username if actor else "",
        organization=organization,
        organization_name=organization.name if organization else "",
        ip_address=ip_address if ip_address is not None else context.ip_address,
        user_agent=(user_agent if user_agent is not None else context.user_agent)[:300],
        data=data or {},
    )
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_repr = str(target)[:200]
    event.save()
    return event
