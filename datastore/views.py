"""The data browser: collections, files (upload with a progress bar, download, delete) and
ACLs, for the signed-in person. Every action goes through the same services as the API."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from datastore import selectors, services
from datastore.apis import file_response
from datastore.models import Collection
from marketplace.errors import ApplicationError
from marketplace.models import Membership

ACL_CHOICES = [("algorithms", "Me and my algorithms"), ("private", "Only me"),
               ("public", "Everyone")]
ACL_BODIES = {acl: {"read": strings} for acl, strings in Collection.ACL_STRINGS.items()}


def _principal(request) -> services.SessionPrincipal:
    return services.SessionPrincipal(request.user)


def _collection(request, owner: str, name: str, *, write: bool = False) -> Collection:
    if name.startswith(services.SPACE_MARK):  # algorithms' spaces: not through the pages
        raise Http404("No such collection.")
    try:
        return services.collection_for(services.DataPath(owner, name), _principal(request),
                                       write=write)
    except ApplicationError as error:
        raise Http404(error.message) from None


@login_required
def data_home(request: HttpRequest) -> HttpResponse:
    user = request.user
    namespaces = [user.username] + list(
        Membership.objects.filter(user=user, role__in=[Membership.Role.OWNER,
                                                       Membership.Role.ADMIN])
        .values_list("organization__name", flat=True))
    if request.method == "POST":
        owner = request.POST.get("owner", user.username)
        try:
            if owner not in namespaces:
                raise ApplicationError("You cannot create collections there.")
            acl = ACL_BODIES.get(request.POST.get("acl", "algorithms"))
            if acl is None:  # not the default: someone chose, and not one of these
                raise ApplicationError("Choose who may read the collection.")
            collection = services.collection_create(
                parent=services.DataPath(owner), name=request.POST.get("name", "").strip(),
                acl=acl,
                key=_principal(request), actor=user)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Created {collection}.")
            return redirect("data-collection", collection.owner_name, collection.name)
    collections = Collection.objects.filter(owner_name__in=namespaces).exclude(
        name__startswith="~").order_by("owner_name", "name")
    return render(request, "datastore/home.html", {
        "collections": collections, "namespaces": namespaces, "acl_choices": ACL_CHOICES})


@login_required
def collection_page(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    collection = _collection(request, owner, name)
    principal = _principal(request)
    return render(request, "datastore/collection.html", {
        "collection": collection, "files": collection.files.order_by("name")[:1000],
        "can_write": services.is_owner(principal, owner_user_id=collection.owner_user_id,
                                        owner_org_id=collection.owner_org_id, write=True),
        "acl_choices": ACL_CHOICES})


@login_required
@require_POST
def upload(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """Multipart upload from the page (its script sends it with a progress bar)."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    collection = _collection(request, owner, name, write=True)
    uploaded = request.FILES.get("file")
    try:
        if uploaded is None:
            raise ApplicationError("Choose a file to upload.")
        services.data_path_parse(f"{owner}/{name}/{uploaded.name}", key=_principal(request))
        data_file = services.file_put(collection=collection, name=uploaded.name, stream=uploaded,
                                      length=uploaded.size, actor=request.user)
    except ApplicationError as error:
        if wants_json:
            return JsonResponse(error.body(), status=error.status_code)
        messages.error(request, error.message)
        return redirect("data-collection", owner, name)
    message = f"Uploaded {data_file.name} ({data_file.size:,} bytes)."
    if wants_json:
        return JsonResponse({"message": message})
    messages.success(request, message)
    return redirect("data-collection", owner, name)


@login_required
def download(request: HttpRequest, owner: str, name: str, file_name: str) -> HttpResponse:
    collection = _collection(request, owner, name)
    data_file = selectors.file_get(collection=collection, name=file_name)
    if data_file is None:
        raise Http404("No such file.")
    return file_response(request, data_file)


@login_required
@require_POST
def delete_file(request: HttpRequest, owner: str, name: str, file_name: str) -> HttpResponse:
    collection = _collection(request, owner, name, write=True)
    data_file = selectors.file_get(collection=collection, name=file_name)
    if data_file is not None:
        services.file_delete(data_file=data_file)
        messages.success(request, f"Deleted {file_name}.")
    return redirect("data-collection", owner, name)


@login_required
@require_POST
def set_acl(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    collection = _collection(request, owner, name, write=True)
    acl = ACL_BODIES.get(request.POST.get("acl", ""))
    if acl is None:
        messages.error(request, "Choose who may read the collection.")
    else:
        services.collection_set_acl(collection=collection, acl=acl, actor=request.user)
        messages.success(request, f"{collection} is now readable by: "
                                  f"{collection.get_read_acl_display().lower()}.")
    return redirect("data-collection", owner, name)


@login_required
@require_POST
def delete_collection(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    collection = _collection(request, owner, name, write=True)
    deleted = services.collection_delete(collection=collection, force=True, actor=request.user)
    messages.success(request, f"Deleted {collection} and its {deleted} file(s).")
    return redirect("data")
