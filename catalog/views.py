"""The catalog's pages: browse and search, the algorithm page, and the publish flow."""
import json
import shlex

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog import forms, selectors, services
from catalog.models import Build, Category
from execution import selectors as execution_selectors
from marketplace import selectors as account_selectors
from marketplace.errors import ApplicationError


def _user(request: HttpRequest):
    return request.user if request.user.is_authenticated else None


def browse(request: HttpRequest) -> HttpResponse:
    query, sort = request.GET.get("q", ""), request.GET.get("sort", "")
    category, tag = request.GET.get("category", ""), request.GET.get("tag", "")
    services.popularity_refresh_if_embedded()
    algorithms = selectors.algorithm_search(query=query, category=category, tag=tag, sort=sort,
                                            user=_user(request))
    page = Paginator(algorithms, 24).get_page(request.GET.get("page"))
    return render(request, "catalog/browse.html", {
        "page": page, "query": query, "sort": sort, "category": category, "tag": tag,
        "categories": Category.objects.all(), "sorts": ["popular", "newest", "price"],
    })


def _visible(request: HttpRequest, owner: str, name: str):
    try:
        return selectors.algorithm_get_visible(owner=owner, name=name, user=_user(request))
    except ApplicationError:
        raise Http404("No such algorithm.") from None


def _managed(request: HttpRequest, owner: str, name: str):
    algorithm = _visible(request, owner, name)
    if not selectors.can_manage(algorithm=algorithm, user=_user(request)):
        raise Http404("No such algorithm.")
    return algorithm


def algorithm_page(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    algorithm = _visible(request, owner, name)
    versions = list(selectors.versions_visible(algorithm=algorithm, user=_user(request)))
    latest = versions[0] if versions else None
    latency = execution_selectors.version_latency(version_ids=[v.pk for v in versions])
    for version in versions:
        version.latency = latency.get(version.pk)
    from billing.selectors import price_quote

    return render(request, "catalog/algorithm.html", {
        "algorithm": algorithm, "versions": versions, "latest": latest,
        "quote": price_quote(version=latest) if latest else None,
        "is_manager": selectors.can_manage(algorithm=algorithm, user=_user(request)),
        "api_base": request.build_absolute_uri("/").rstrip("/"),
        "snippet": _call_snippet(latest.sample_input if latest else ""),
    })


def _call_snippet(sample: str) -> dict:
    """The sample input as each snippet on the page must spell it: JSON sent as JSON, and
    as the Python value it is (``true`` is ``True``); anything else as text. The shell's
    argument quoted for the shell. (Pasted as it was, a text or unfinished JSON sample made
    a snippet that did not run: ``algo.pipe(hello world)``.)"""
    sample = sample or '"input"'
    try:
        value, content_type = json.loads(sample), "application/json"
    except ValueError:
        value, content_type = sample, "text/plain"
    return {"content_type": content_type, "python": repr(value),
            "shell": shlex.quote(sample)}


@login_required
def publish(request: HttpRequest) -> HttpResponse:
    """Create an algorithm, then continue on its manage page (upload, build, publish)."""
    owners = [request.user.username] + [
        o.name for o in account_selectors.organizations_for_user(user=request.user)]
    form = forms.AlgorithmCreateForm(request.POST or None, owners=owners)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            algorithm = services.algorithm_create(
                actor=request.user, owner=data["owner"], name=data["name"], label=data["label"],
                tagline=data["tagline"], language=data["language"],
                royalty_microcredits=forms.to_microcredits(data["royalty"]))
        except ApplicationError as error:
            form.add_error(None, error.message)
        except Exception as error:  # ValidationError from the model
            form.add_error(None, "; ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(request, f"Created {algorithm.path}. Upload its source next.")
            return redirect("algorithm-manage", owner=algorithm.owner_name, name=algorithm.name)
    return render(request, "catalog/publish.html", {
        "form": form, "mine": selectors.algorithms_for_user(user=request.user)})


@login_required
def manage(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    algorithm = _managed(request, owner, name)
    settings_form = forms.SettingsForm.for_algorithm(algorithm)
    if request.method == "POST":
        settings_form = forms.SettingsForm.for_algorithm(algorithm, request.POST)
        if settings_form.is_valid():
            try:
                services.algorithm_update(algorithm=algorithm, actor=request.user,
                                          **settings_form.service_fields())
            except ApplicationError as error:
                settings_form.add_error(None, error.message)
            else:
                messages.success(request, "Settings saved. They apply to the next version.")
                return redirect("algorithm-manage", owner=owner, name=name)
    builds = list(selectors.builds_of(algorithm=algorithm)[:20])
    newest_ok = next((b for b in builds if b.status == Build.Status.SUCCEEDED), None)
    return render(request, "catalog/manage.html", {
        "algorithm": algorithm, "builds": builds, "settings_form": settings_form,
        "upload_form": forms.UploadForm(),
        "publish_form": forms.PublishForm(initial={"callability": algorithm.callability}),
        "publishable": newest_ok if newest_ok and not hasattr(newest_ok, "version") else None,
        "versions": selectors.versions_visible(algorithm=algorithm, user=request.user),
        "deletable": not selectors.has_public_version(algorithm=algorithm),
    })


@login_required
@require_POST
def upload_source(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """Multipart upload from the page; the page's script sends it with a progress bar."""
    algorithm = _managed(request, owner, name)
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    form = forms.UploadForm(request.POST, request.FILES)
    try:
        if not form.is_valid():
            raise ApplicationError("Choose a .tar.gz or .zip file to upload.")
        upload = form.cleaned_data["bundle"]
        bundle = services.source_bundle_upload(
            algorithm=algorithm, actor=request.user, chunks=upload.chunks(),
            filename=upload.name, content_type=upload.content_type or "")
    except ApplicationError as error:
        if wants_json:
            return JsonResponse({"error": {"message": error.message,
                                           "error_type": error.error_type}},
                                status=error.status_code)
        messages.error(request, error.message)
    else:
        text = f"Uploaded {bundle.file_count} files ({bundle.content_hash[:12]})."
        if wants_json:
            return JsonResponse({"message": text, "content_hash": bundle.content_hash})
        messages.success(request, text)
    return redirect("algorithm-manage", owner=owner, name=name)


@login_required
@require_POST
def compile_source(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    algorithm = _managed(request, owner, name)
    try:
        build = services.build_start(algorithm=algorithm, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("algorithm-manage", owner=owner, name=name)
    return redirect("build", owner=owner, name=name, build_id=build.build_id)


@login_required
def build_page(request: HttpRequest, owner: str, name: str, build_id: str) -> HttpResponse:
    algorithm = _managed(request, owner, name)
    try:
        build = selectors.build_get(algorithm=algorithm, build_id=build_id)
    except ApplicationError:
        raise Http404("No such build.") from None
    return render(request, "catalog/build.html", {"algorithm": algorithm, "build": build})


@login_required
@require_POST
def delete_algorithm(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """Delete, from the manage page, once its name is typed (as the API's DELETE does)."""
    algorithm = _managed(request, owner, name)
    if request.POST.get("confirm", "").strip() != algorithm.name:
        messages.error(request, f"Type {algorithm.name} to confirm the deletion.")
        return redirect("algorithm-manage", owner=owner, name=name)
    try:
        services.algorithm_delete(algorithm=algorithm, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("algorithm-manage", owner=owner, name=name)
    messages.success(request, f"Deleted {owner}/{name}.")
    return redirect("publish")


@login_required
@require_POST
def publish_version(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    algorithm = _managed(request, owner, name)
    form = forms.PublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a version type.")
        return redirect("algorithm-manage", owner=owner, name=name)
    try:
        version = services.version_publish(algorithm=algorithm, actor=request.user,
                                           **form.cleaned_data)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("algorithm-manage", owner=owner, name=name)
    messages.success(request, f"Published {algorithm.path}/{version.semantic_version}.")
    return redirect(reverse("algorithm", kwargs={"owner": owner, "name": name}))
