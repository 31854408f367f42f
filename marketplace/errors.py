"""One error hierarchy and one exception handler for every ``/v1/`` endpoint.

Every error is the envelope of API.md::

    {"error": {"message": "...", "error_type": "...", "stack_trace": "..."?}}
"""
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """An error meant for the caller: its message is safe to show."""

    status_code = 400
    error_type = "InputError"

    def __init__(self, message: str, *, stack_trace: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.stack_trace = stack_trace
        self.extra = extra or {}

    def body(self) -> dict:
        """The envelope of this error, as every /v1/ endpoint sends it."""
        return error_body(self.message, self.error_type, self.stack_trace, **self.extra)


class InputError(ApplicationError):
    status_code, error_type = 400, "InputError"


class AuthError(ApplicationError):
    status_code, error_type = 401, "AuthError"


class PermissionDeniedError(ApplicationError):
    status_code, error_type = 403, "AuthError"


class NotFoundError(ApplicationError):
    status_code, error_type = 404, "NotFound"


class ConflictError(ApplicationError):
    status_code, error_type = 409, "InputError"


class PayloadTooLargeError(ApplicationError):
    status_code, error_type = 413, "InputError"


class PaymentRequiredError(ApplicationError):
    status_code, error_type = 402, "PaymentRequired"


class RateLimitedError(ApplicationError):
    status_code, error_type = 429, "RateLimited"


def error_body(message: str, error_type: str, stack_trace: str | None = None, **extra) -> dict:
    """The envelope's dict form."""
    error = {"message": message, "error_type": error_type}
    if stack_trace:
        error["stack_trace"] = stack_trace
    error.update(extra)
    return {"error": error}


def error_response(status: int, message: str, error_type: str, **extra) -> JsonResponse:
    """The envelope as a plain Django response, for code outside DRF views."""
    return JsonResponse(error_body(message, error_type, **extra), status=status)


# DRF's own exceptions, by class: (error_type, message or None to keep DRF's text).
_DRF_TYPES: list[tuple[type, str]] = [
    (drf.NotAuthenticated, "AuthError"),
    (drf.AuthenticationFailed, "AuthError"),
    (drf.PermissionDenied, "AuthError"),
    (drf.NotFound, "NotFound"),
    (drf.Throttled, "RateLimited"),
    (drf.MethodNotAllowed, "InputError"),
    (drf.UnsupportedMediaType, "InputError"),
    (drf.NotAcceptable, "InputError"),
    (drf.ParseError, "InputError"),
    (drf.ValidationError, "InputError"),
]


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, errors in detail.items():
            text = _validation_message(errors)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_validation_message(d) for d in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response:
    """Render any exception raised in a DRF view as the envelope, never as HTML."""
    if isinstance(exc, ApplicationError):
        return Response(exc.body(), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("The request body is too large.", "InputError"), status=413)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        body = error_body(_validation_message(detail), "InputError", fields=detail)
        return Response(body, status=400)
    if isinstance(exc, Http404):
        return Response(error_body("Not found.", "NotFound"), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("Permission denied.", "AuthError"), status=403)
    if isinstance(exc, drf.APIException):
        error_type = next((t for cls, t in _DRF_TYPES if isinstance(exc, cls)), "InputError")
        if isinstance(exc, drf.ValidationError):
            body = error_body(_validation_message(exc.detail), error_type, fields=exc.detail)
        else:
            body = error_body(str(exc.detail), error_type)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(body, status=exc.status_code, headers=headers)
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    from marketplace.db_pool import check_pool_if_connection_lost

    check_pool_if_connection_lost(exc)
    return Response(error_body("Internal server error.", "InternalError"), status=500)
