"""Where audit events learn the IP and user agent of the request that caused them."""
import contextlib
import contextvars
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest


@dataclass(frozen=True)
class AuditContext:
    ip_address: str | None = None
    user_agent: str = ""


_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "audit_context", default=AuditContext()
)


def audit_context_from_request(request: HttpRequest) -> AuditContext:
    ip = request.META.get("REMOTE_ADDR") or None
    if getattr(settings, "AUDIT_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        ip = forwarded.split(",")[0].strip() or ip
    return AuditContext(ip_address=ip, user_agent=request.META.get("HTTP_USER_AGENT", "")[:300])


def current_audit_context() -> AuditContext:
    return _current.get()


@contextlib.contextmanager
def bind_audit_context(context: AuditContext):
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)
