"""Completion webhooks (`callback=`): signed with HMAC-SHA256, retried with backoff, and their
failures visible to the caller on the request's result.

The signature header is ``X-Algostore-Signature: t=<unix time>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 over ``"<t>.<body>"`` with the caller's webhook secret (shown on the API keys page).
"""
import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from execution.models import Invocation, WebhookDelivery
from marketplace.dispatch import task_send
from marketplace.errors import InputError
from marketplace.services import webhook_secret


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def validate_callback(url: str) -> str:
    parts = urlsplit(url)
    allowed = {"https"} | ({"http"} if settings.WEBHOOK_ALLOW_HTTP else set())
    if parts.scheme not in allowed or not parts.hostname:
        raise InputError("callback must be an https:// URL.")
    return url


def schedule(invocation: Invocation) -> None:
    """After a call with a callback finishes: record the delivery and queue its first try."""
    url = invocation.options.get("callback")
    if not url:
        return
    delivery = WebhookDelivery.objects.create(invocation=invocation, url=url)
    task_send("execution.deliver_webhook", args=[delivery.pk], queue="default")


def deliver(delivery_pk: int) -> str:
    """One attempt. Returns "delivered", "retry" (try again later) or "failed" (gave up)."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update(of=("self",)).select_related(
            "invocation", "invocation__caller").get(pk=delivery_pk)
        if delivery.status != WebhookDelivery.Status.PENDING:
            return delivery.status
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    invocation = delivery.invocation
    body = json.dumps({"request_id": str(invocation.request_id), "status": invocation.status,
                       **(invocation.result or {})}).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "Algostore-Webhooks/1",
               "X-Algostore-Signature": sign(webhook_secret(invocation.caller), timestamp, body),
               "X-Algostore-Request-Id": str(invocation.request_id)}
    try:
        response = requests.post(delivery.url, data=body, headers=headers, timeout=10,
                                 allow_redirects=False)
        ok, error, code = 200 <= response.status_code < 300, "", response.status_code
        if not ok:
            error = f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        ok, error, code = False, type(exc).__name__, None
    final = ok or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
    status = (WebhookDelivery.Status.DELIVERED if ok else
              WebhookDelivery.Status.FAILED if final else WebhookDelivery.Status.PENDING)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, last_status_code=code, last_error=error[:200],
        delivered_at=timezone.now() if ok else None)
    return "delivered" if ok else ("failed" if final else "retry")


def backoff_seconds(attempt: int) -> int:
    return min(2 ** attempt * settings.WEBHOOK_BACKOFF_SECONDS, 3600)
