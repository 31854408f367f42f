"""Audit receivers for Django's own sign-in signals (Django emits them; we only listen)."""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from marketplace.services import audit_record


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    audit_record(action="user.login", actor=user, target=user)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(action="user.logout", actor=user, target=user)


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # The password is never recorded; Django already masks it in ``credentials``.
    audit_record(action="user.login_failed", data={"username": credentials.get("username", "")})
