"""Showing a new key's secret exactly once, across a redirect, without storing it.

After a POST that makes a key the page redirects (so a reload never makes a second key), and
the secret rides to the one page that shows it in a short-lived, signed, HttpOnly cookie
bound to the user and scoped to that page's path. A one-time nonce, kept server-side in the
cache, makes a replayed cookie worthless; the database never sees the secret.
"""
import secrets

from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

COOKIE = "algostore_new_key"
_SALT = "marketplace.key_reveal"
MAX_AGE_SECONDS = 120


def reveal_on_next_page(request: HttpRequest, response: HttpResponse, *, name: str,
                        raw: str) -> HttpResponse:
    """Attach the secret to ``response`` (a redirect) for the page it redirects to."""
    nonce = secrets.token_urlsafe(16)
    cache.set(_nonce_key(nonce), 1, timeout=MAX_AGE_SECONDS)
    value = signing.dumps({"uid": request.user.pk, "name": name, "raw": raw, "nonce": nonce},
                          salt=_SALT)
    response.set_cookie(COOKIE, value, max_age=MAX_AGE_SECONDS, httponly=True,
                        samesite="Strict", secure=request.is_secure(), path=response.url)
    return response


def take_revealed(request: HttpRequest) -> dict | None:
    """The secret waiting for this user, at most once: ``{"name", "raw"}``."""
    value = request.COOKIES.get(COOKIE)
    if not value:
        return None
    try:
        data = signing.loads(value, salt=_SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    if data.get("uid") != request.user.pk or not cache.delete(_nonce_key(data.get("nonce", ""))):
        return None
    return {"name": data["name"], "raw": data["raw"]}


def forget_revealed(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Delete the cookie and keep the page that showed a secret out of every cache."""
    response["Cache-Control"] = "no-store, max-age=0"
    if COOKIE in request.COOKIES:
        response.delete_cookie(COOKIE, path=request.path, samesite="Strict")
    return response


def _nonce_key(nonce: str) -> str:
    return f"key-reveal:{nonce}"
