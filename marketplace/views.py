"""The site shell's pages: home, sign-up and sign-in, dashboard, keys, organizations, docs."""
import datetime

import markdown
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog import selectors as catalog_selectors
from marketplace import health, key_reveal, selectors, services
from marketplace.errors import ApplicationError
from marketplace.forms import (
    KeyCapForm,
    KeyCreateForm,
    MemberAddForm,
    OrganizationCreateForm,
    SignupForm,
    credits_to_microcredits,
)
from marketplace.models import Membership, User

DOCS_DIR = settings.BASE_DIR / "docs"


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: database, cache, channel layer; ``?deep=1`` adds a worker ping."""
    report = health.check_all(deep=request.GET.get("deep") == "1")
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, issued = services.user_signup(
                username=form.cleaned_data["username"], email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return key_reveal.reveal_on_next_page(request, redirect("welcome"),
                                                  name=issued.key.name, raw=issued.raw)
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def welcome(request: HttpRequest) -> HttpResponse:
    response = render(request, "accounts/welcome.html",
                      {"revealed": key_reveal.take_revealed(request)})
    return key_reveal.forget_revealed(request, response)


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        services.audit_record(action="user.password_change", actor=self.request.user,
                              target=self.request.user)
        return response


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    from billing.services import account_for_user
    from catalog.services import popularity_refresh_if_embedded

    popularity_refresh_if_embedded()  # the algorithms' calls in 30 days (beat's, with a broker)
    return render(request, "dashboard.html", {
        "account": account_for_user(user),
        "algorithms": catalog_selectors.algorithms_for_user(user=user),
        "keys": selectors.api_keys_visible_to(user=user).filter(revoked_at__isnull=True),
        "organizations": selectors.organizations_for_user(user=user),
        "events": selectors.audit_events_for_user(user=user, limit=15),
    })


def _managed_orgs(user: User):
    return selectors.organizations_for_user(user=user).filter(
        memberships__user=user, memberships__role__in=selectors.MANAGER_ROLES
    )


@login_required
@require_POST
def key_set_cap(request: HttpRequest, prefix: str) -> HttpResponse:
    """Set or clear a key's monthly spending cap (empty: no cap)."""
    key = selectors.api_keys_visible_to(user=request.user).filter(prefix=prefix).first()
    if key is None or not services.api_key_can_administer(key=key, user=request.user):
        raise Http404("No such key.")
    form = KeyCapForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The cap must be a number of credits, 0 or more.")
        return redirect("keys")
    cap = credits_to_microcredits(form.cleaned_data["monthly_cap_credits"])
    try:
        services.api_key_set_spend_cap(key=key, cap=cap, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{key.name}: " + (
            "no spending cap." if cap is None else f"capped at {cap / 1_000_000:g} credits a month."))
    return redirect("keys")


@login_required
def keys_page(request: HttpRequest) -> HttpResponse:
    """List keys; on POST make one, then redirect to show its secret once."""
    form = KeyCreateForm(request.POST or None, organizations=_managed_orgs(request.user))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        expires_on = data.get("expires_on")
        expires_at = (
            datetime.datetime.combine(expires_on, datetime.time.min, tzinfo=datetime.UTC)
            if expires_on else None
        )
        try:
            issued = services.api_key_create(
                created_by=request.user, name=data["name"], organization=form.organization(),
                scopes=services.KeyScopes(algo_patterns=data["algorithms"],
                                          data_access=data["data_access"],
                                          can_manage=data["can_manage"]),
                expires_at=expires_at,
                monthly_spend_cap=form.monthly_spend_cap(),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            return key_reveal.reveal_on_next_page(request, redirect("keys"),
                                                  name=issued.key.name, raw=issued.raw)
    from billing.selectors import keys_spend_this_month

    keys = list(selectors.api_keys_visible_to(user=request.user))
    # Beside each active key's cap: what it (and the keys made from it) spent this month.
    spent = keys_spend_this_month(keys=[key for key in keys if key.is_active])
    for key in keys:
        key.spent_this_month = spent.get(key.pk)
    response = render(request, "accounts/keys.html", {
        "form": form,
        "keys": keys,
        "revealed": key_reveal.take_revealed(request),
        "webhook_secret": services.webhook_secret(request.user),
    })
    return key_reveal.forget_revealed(request, response)


@login_required
@require_POST
def key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    try:
        key = selectors.api_key_get_visible(user=request.user, prefix=prefix)
        services.api_key_revoke(key=key, actor=request.user)
    except ApplicationError as error:
        if error.status_code == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
    else:
        messages.success(request, f"Revoked {key.name} ({key.masked}). It no longer works.")
    return redirect("keys")


@login_required
def organizations_page(request: HttpRequest) -> HttpResponse:
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Created {org.name}. You are its owner.")
            return redirect("organization", name=org.name)
    memberships = Membership.objects.filter(user=request.user).select_related("organization")
    return render(request, "orgs/list.html", {"form": form, "memberships": memberships})


@login_required
def organization_page(request: HttpRequest, name: str) -> HttpResponse:
    """An organization's members; owners and admins add, re-role and remove them here."""
    try:
        org = selectors.organization_get_for_member(name=name, user=request.user)
    except ApplicationError:
        raise Http404("No such organization.") from None
    form = MemberAddForm()
    if request.method == "POST":
        form, done = _organization_action(request, org)
        if done:
            return redirect("organization", name=org.name)
    return render(request, "orgs/detail.html", {
        "org": org,
        "form": form,
        "members": selectors.memberships_of(organization=org),
        "me": selectors.membership_get(organization=org, user=request.user),
        "roles": Membership.Role.choices,
    })


def _organization_action(request: HttpRequest, org) -> tuple[MemberAddForm, bool]:
    action = request.POST.get("action")
    form = MemberAddForm(request.POST if action == "add" else None)
    try:
        if action == "add":
            if not form.is_valid():
                return form, False
            user = selectors.user_get_by_username(username=form.cleaned_data["username"])
            services.membership_add(organization=org, actor=request.user, user=user,
                                    role=form.cleaned_data["role"])
            messages.success(request, f"Added {user.username}.")
        elif action in ("role", "remove"):
            user = selectors.user_get_by_username(username=request.POST.get("username", ""))
            if action == "role":
                services.membership_set_role(organization=org, actor=request.user, user=user,
                                             role=request.POST.get("role", ""))
                messages.success(request, f"{user.username} is now {request.POST.get('role')}.")
            else:
                services.membership_remove(organization=org, actor=request.user, user=user)
                messages.success(request, f"Removed {user.username}.")
        return form, True
    except ApplicationError as error:
        messages.error(request, error.message)
        return form, True


def docs_page(request: HttpRequest, slug: str = "index") -> HttpResponse:
    """Render one Markdown file of docs/ (slugs are [-a-zA-Z0-9_], so no path escapes)."""
    path = DOCS_DIR / f"{slug}.md"
    if not path.is_file():
        raise Http404("No such page.")
    html = markdown.markdown(path.read_text(), extensions=["fenced_code", "tables", "toc"])
    pages = sorted(p.stem for p in DOCS_DIR.glob("*.md") if p.stem != "index")
    return render(request, "docs.html", {"content": html, "pages": pages, "slug": slug})
