"""Completion webhooks (`callback=`): signed with HMAC-SHA256, retried with backoff, and their
failures visible to the caller on the request's result.

The signature header is ``X-Algostore-Signature: t=<unix time>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 over ``"<t>.<body>"`` with the caller's webhook secret (shown on the API keys page).
"""
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import certifi
import urllib3
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
    """An https:// URL whose host is on the internet: a callback to the platform's own
    networks (loopback, private ranges, link-local cloud metadata) would let any caller
    make the platform POST inside them. Checked again at each delivery (the name may
    resolve elsewhere by then)."""
    parts = urlsplit(url)
    allowed = {"https"} | ({"http"} if settings.WEBHOOK_ALLOW_HTTP else set())
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        raise InputError("callback's port must be a number.") from None
    if parts.scheme not in allowed or not parts.hostname:
        raise InputError("callback must be an https:// URL.")
    public_addresses(parts.hostname, _port(parts))
    return url


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, or InputError if it does not resolve, or if any
    is not on the public internet (unless WEBHOOK_ALLOW_PRIVATE_HOSTS, for development)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise InputError(f"callback's host {host} does not resolve.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            mapped = getattr(ip, "ipv4_mapped", None) or ip
            if not mapped.is_global or mapped.is_multicast or mapped.is_reserved:
                raise InputError(f"callback's host {host} is not a public address (it resolves "
                                 "to a loopback, private, link-local or reserved one).")
    return addresses


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
        status_code = _post(delivery.url, body, headers)
        ok, error, code = 200 <= status_code < 300, "", status_code
        if not ok:
            error = f"HTTP {status_code}"
    except InputError as refused:  # its host now resolves inside the platform's networks
        ok, error, code = False, refused.message, None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        ok, error, code = False, type(exc).__name__, None
    final = ok or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
    status = (WebhookDelivery.Status.DELIVERED if ok else
              WebhookDelivery.Status.FAILED if final else WebhookDelivery.Status.PENDING)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, last_status_code=code, last_error=error[:200],
        delivered_at=timezone.now() if ok else None)
    return "delivered" if ok else ("failed" if final else "retry")


def _post(url: str, body: bytes, headers: dict) -> int:
    """POST to the address the host resolved to when checked (``public_addresses``), not to
    whatever it resolves to a moment later; TLS still verifies the host's own name. No
    redirects (a redirect could lead anywhere). Returns the status code."""
    parts = urlsplit(url)
    host, port = parts.hostname, _port(parts)
    address = public_addresses(host, port)[0]
    options = {"timeout": urllib3.Timeout(total=10), "retries": False, "maxsize": 1}
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(address, port, server_hostname=host,
                                           assert_hostname=host, cert_reqs="CERT_REQUIRED",
                                           ca_certs=certifi.where(), **options)
    else:
        pool = urllib3.HTTPConnectionPool(address, port, **options)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen("POST", path, body=body, redirect=False,
                                headers={**headers, "Host": parts.netloc.rsplit("@", 1)[-1]})
        return response.status
    finally:
        pool.close()


def backoff_seconds(attempt: int) -> int:
    return min(2 ** attempt * settings.WEBHOOK_BACKOFF_SECONDS, 3600)
