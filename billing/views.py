"""Billing pages: the account (balance, buying credits, statement, usage and earnings with
charts, CSV exports) and the operators' dashboard (revenue, adjustments, ledger check)."""
import csv
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing import selectors, services
from billing.models import Account
from billing.services.payments import payments_enabled
from execution.selectors import recent_failures
from marketplace.errors import ApplicationError
from marketplace.models import Organization
from marketplace.selectors import MANAGER_ROLES


def _accounts_for(user) -> list[tuple[str, Account]]:
    """The accounts this person may see and fund: their own, and those of the organizations
    they own or administer."""
    choices = [("", services.account_for_user(user))]
    orgs = Organization.objects.filter(memberships__user=user,
                                       memberships__role__in=MANAGER_ROLES).order_by("name")
    choices += [(f"org:{org.name}", services.account_for_organization(org)) for org in orgs]
    return choices


def _account(request: HttpRequest) -> tuple[str, Account, list]:
    choices = _accounts_for(request.user)
    wanted = request.GET.get("account", request.POST.get("account", ""))
    for value, account in choices:
        if value == wanted:
            return value, account, choices
    raise Http404("No such account.")


@login_required
def billing_page(request: HttpRequest) -> HttpResponse:
    selected, account, choices = _account(request)
    usage = selectors.usage_by_algorithm_and_day(account=account)
    earnings = selectors.earnings_by_version_and_day(account=account)
    spent_series = selectors.daily_series(
        [{**row, "total": (row["royalty"] or 0) + (row["compute"] or 0)} for row in usage],
        "total")
    return render(request, "billing/account.html", {
        "account": account, "selected": selected, "choices": choices,
        "balance": selectors.account_balance(account),
        "payments_enabled": payments_enabled(),
        "packs": [(name, cents / 100, pack_credits)
                  for name, (cents, pack_credits) in settings.BILLING_PACKS.items()],
        "statement": selectors.statement(account=account, limit=50),
        "usage": usage, "spent_series": spent_series,
        "earnings": earnings, "earned_series": selectors.daily_series(earnings, "earned"),
    })


@login_required
@require_POST
def buy_credits(request: HttpRequest) -> HttpResponse:
    selected, account, _ = _account(request)
    back = reverse("billing") + (f"?account={selected}" if selected else "")
    try:
        purchase = services.checkout_create(
            account=account, pack=request.POST.get("pack", ""), user=request.user,
            success_url=request.build_absolute_uri(reverse("billing-bought"))
            + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=request.build_absolute_uri(back))
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(back)
    return redirect(purchase.checkout_url, permanent=False)


@login_required
def bought(request: HttpRequest) -> HttpResponse:
    """Where Stripe sends the buyer back: thanks for a checkout they started, and nothing
    more for any other session id (it thanked anyone, payments on or off)."""
    from billing.models import CreditPurchase

    session_id = request.GET.get("session_id", "")
    if not session_id or not CreditPurchase.objects.filter(
            checkout_session_id=session_id, created_by=request.user).exists():
        messages.error(request, "There is no purchase of yours with that checkout session.")
        return redirect("billing")
    messages.success(request, "Thank you. Your credits appear here as soon as Stripe confirms "
                              "the payment (usually within seconds).")
    return redirect("billing")


def _csv(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


@login_required
def usage_csv(request: HttpRequest) -> HttpResponse:
    _, account, _ = _account(request)
    rows = selectors.usage_by_algorithm_and_day(account=account, days=366)
    return _csv("algostore-usage.csv",
                ["day", "algorithm", "calls", "royalty_microcredits", "compute_microcredits",
                 "total_microcredits"],
                ([row["day"], row["algorithm_path"], row["calls"], row["royalty"],
                  row["compute"], row["royalty"] + row["compute"]] for row in rows))


@login_required
def earnings_csv(request: HttpRequest) -> HttpResponse:
    _, account, _ = _account(request)
    rows = selectors.earnings_by_version_and_day(account=account, days=366)
    return _csv("algostore-earnings.csv",
                ["day", "algorithm", "version", "calls", "earned_microcredits"],
                ([row["day"], row["algorithm"], row["version"], row["calls"], row["earned"]]
                 for row in rows))


# --- operators --------------------------------------------------------------------------------
@staff_member_required
def operations_page(request: HttpRequest) -> HttpResponse:
    overview = selectors.platform_overview()
    return render(request, "billing/operations.html", {
        "overview": overview, "problems": selectors.ledger_problems(),
        "failures": recent_failures(limit=20),
        "adjustments": selectors.recent_adjustments(limit=20),
    })


@staff_member_required
@require_POST
def adjust(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("account", "").strip()
    account = selectors.account_by_holder(name=name)
    try:
        if account is None:
            raise ApplicationError(f"No user or organization named {name!r}.")
        try:
            amount = int(Decimal(request.POST.get("credits", "").strip()) * 1_000_000)
        except (InvalidOperation, ValueError, OverflowError):
            raise ApplicationError("Give the amount in credits, e.g. 25 or -2.5.") from None
        if abs(amount) > 10 ** 18:
            raise ApplicationError("That amount is out of range.")
        services.adjustment_create(account=account, amount=amount,
                                   reason=request.POST.get("reason", ""), actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Adjusted {account.name} by {amount / 1_000_000:g} credits.")
    return redirect("billing-operations")


