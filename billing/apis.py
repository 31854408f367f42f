"""Billing's /v1/ API: the caller's account, price quotes, the Stripe webhook, and the
Algorithmia admin usage reports.

Each class is one operation: parse, call a service or selector, serialize.
"""
from datetime import date

from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from catalog import selectors as catalog_selectors
from marketplace.errors import InputError, NotFoundError, PermissionDeniedError


class AccountApi(APIView):
    """``GET /v1/billing/account``: who pays for this key's calls, and what it has."""

    def get(self, request):
        key = request.auth
        if not key.can_manage:  # e.g. a key derived for a composed call: not its business
            raise PermissionDeniedError("Reading the account needs a key with the manage scope.")
        account = services.account_for_key(key)
        return Response({
            "account": account.name, "account_type": account.kind,
            **selectors.account_balance(account),
            "key": {"id": key.prefix,
                    "monthly_spend_cap_microcredits": key.monthly_spend_cap,
                    "spent_this_month_microcredits": selectors.key_spend_this_month(key=key)},
        })


class PriceApi(APIView):
    """``GET /v1/algorithms/{owner}/{name}/versions/{version}/price``: a quote for one call."""

    def get(self, request, owner: str, name: str, version: str):
        resolved = catalog_selectors.version_resolve(owner=owner, name=name, spec=version,
                                                     user=request.user)
        if resolved.version is None:
            raise NotFoundError("Only published versions have a price.")
        quote = selectors.price_quote(version=resolved.version,
                                      payer=services.account_for_key(request.auth))
        return Response({"algorithm": resolved.algorithm.path, **quote})


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookApi(APIView):
    """``POST /v1/billing/stripe/webhook``: Stripe's signed events (no API key: the
    signature is the authentication)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        outcome = services.stripe_event_handle(
            payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
        return Response({"received": True, "outcome": outcome})


# --- /v1/admin/usage ----------------------------------------------------------------------
def _admin_key(request) -> None:
    if not (request.user.is_staff and request.auth.can_manage):
        raise PermissionDeniedError("The usage reports are for administrators' keys.")


def _report(request, group_by: tuple[str, ...]) -> Response:
    from execution.selectors import usage_rows

    _admin_key(request)
    try:
        start = date.fromisoformat(request.query_params["start_date"])
        end = date.fromisoformat(request.query_params["end_date"])
        page_size = int(request.query_params.get("page_size", 100))
        offset = int(request.query_params.get("marker") or 0)
    except (KeyError, ValueError):
        raise InputError("start_date and end_date (YYYY-MM-DD) are required; page_size and "
                         "marker are whole numbers.") from None
    if end < start or not 1 <= page_size <= 1000 or offset < 0:
        raise InputError("end_date must not be before start_date; page_size is 1 to 1000.")
    rows = usage_rows(start=start, end=end, group_by=group_by,
                      callers=request.query_params.getlist("user") or None)
    page = rows[offset: offset + page_size]
    for row in page:
        row["total_calls"] = str(row["total_calls"])  # a string in the official client's model
        if "algorithm" in row:
            row["algorithm_called"] = row.pop("algorithm")
            row["algorithm_version"] = row.pop("version")
            row["algorithm_owner"] = row.pop("owner")
            row["machine_type"] = "cpu"
    more = offset + page_size < len(rows)
    return Response({"results": page, "next_marker": str(offset + page_size) if more else None})


class AdminUsageApi(APIView):
    def get(self, request):
        return _report(request, ("algorithm", "version", "owner", "caller"))


class AdminAlgorithmUsageApi(APIView):
    def get(self, request):
        return _report(request, ("algorithm", "version", "owner"))


class AdminUserUsageApi(APIView):
    def get(self, request):
        return _report(request, ("caller",))
