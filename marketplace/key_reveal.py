"""Showing a new key's secret exactly once, across a redirect, without storing it.

After a POST that makes a key the page redirects (so a reload never makes a second key), and
the secret rides to the next page in a short-lived, signed, HttpOnly cookie bound to the user.
The page that shows it deletes the cookie; the database never sees the secret.
"""
from django.core import signing
from django.http import HttpRequest, HttpResponse

COOKIE = "algostore_new_key"
_SALT = "marketplace.key_reveal"
MAX_AGE_SECONDS = 120


def reveal_on_next_page(request: HttpRequest, response: HttpResponse, *, name: str,
                        raw: str) -> HttpResponse:
    value = signing.dumps({"uid": request.user.pk, "name": name, "raw": raw}, salt=_SALT)
    response.set_cookie(COOKIE, value, max_age=MAX_AGE_SECONDS, httponly=True,
                        samesite="Strict", secure=request.is_secure())
    return response


def take_revealed(request: HttpRequest) -> dict | None:
    """The secret waiting for this user, if any: ``{"name", "raw"}``."""
    value = request.COOKIES.get(COOKIE)
    if not value:
        return None
    try:
        data = signing.loads(value, salt=_SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    return data if data.get("uid") == request.user.pk else None


def forget_revealed(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if COOKIE in request.COOKIES:
        response.delete_cookie(COOKIE, samesite="Strict")
    return response
