"""Site-wide middleware: the /v1/ error envelope outside DRF, and the audit context."""
import json
from http import HTTPStatus

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from marketplace.audit_context import audit_context_from_request, bind_audit_context
from marketplace.errors import error_response

_ERROR_TYPES = {401: "AuthError", 402: "PaymentRequired", 403: "AuthError", 404: "NotFound",
                429: "RateLimited"}


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/v1/")


class V1ErrorEnvelopeMiddleware:
    """Makes every /v1/ error JSON, including Django's own 404, 405, 413 and 500 pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (not _is_api(request) or response.status_code < 400 or _is_json(response)
                or getattr(response, "bare_error", False)):  # output=raw: an algorithm's error
            return response
        status = response.status_code
        error_type = _ERROR_TYPES.get(status, "InternalError" if status >= 500 else "InputError")
        message = _MESSAGES.get(status) or HTTPStatus(status).phrase
        return error_response(status, message, error_type)

    def process_exception(self, request: HttpRequest, exception: Exception):
        # Django turns RequestDataTooBig into a 400; the API promises a 413.
        if _is_api(request) and isinstance(exception, RequestDataTooBig):
            return error_response(413, "The request body is too large.", "InputError")
        return None


_MESSAGES = {
    404: "Not found.",
    405: "Method not allowed.",
    500: "Internal server error.",
}


def _is_json(response: HttpResponse) -> bool:
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    if getattr(response, "streaming", False):
        return True
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


class AuditContextMiddleware:
    """Binds the request's IP and user agent so audit events made deeper down carry them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with bind_audit_context(audit_context_from_request(request)):
            return self.get_response(request)
