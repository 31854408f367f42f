"""DRF authentication by API key: ``Authorization: <key>``, ``Simple <key>`` or ``Bearer <key>``."""
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from marketplace.errors import AuthError
from marketplace.services import api_key_authenticate

_SCHEMES = ("simple ", "bearer ")


def key_from_header(header: str) -> str:
    """The raw key in an Authorization header, whichever of the three forms it takes."""
    header = header.strip()
    lowered = header.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return header[len(scheme):].strip()
    return header


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Sets ``request.user`` to the key's user (its creator for an organization key) and
    ``request.auth`` to the ApiKey."""

    def authenticate(self, request: Request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.strip():
            return None
        try:
            key = api_key_authenticate(raw=key_from_header(header))
        except AuthError as error:
            raise exceptions.AuthenticationFailed(error.message) from None
        return (key.acting_user, key)

    def authenticate_header(self, request: Request) -> str:
        return 'Simple realm="algostore"'
