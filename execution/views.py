"""The "try it" console behind the algorithm page: a call made with the signed-in user's key."""
import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from execution import services
from marketplace import selectors as account_selectors
from marketplace.errors import ApplicationError, error_body


@login_required
@require_POST
def try_call(request: HttpRequest, owner: str, name: str) -> JsonResponse:
    """Run one call from the page. It uses (never shows) one of the user's own active keys
    that may call this algorithm (``api_key_for_console``), so it is billed and scoped like
    any API call."""
    try:
        form = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse(error_body("Send a JSON body.", "InputError"), status=400)
    try:
        key = account_selectors.api_key_for_console(user=request.user, owner=owner, name=name)
        if not isinstance(form, dict) or form.get("content_type", "json") not in (
                "json", "text") or not isinstance(form.get("version") or "", str):
            return JsonResponse(error_body(
                'Send a JSON object: {"input": "...", "content_type": "json" or "text", '
                '"version": "1.2.3" (optional)}.', "InputError"), status=400)
        kind, given = form.get("content_type", "json"), form.get("input", "")
        invocation, envelope = services.invocation_call(
            key=key, user=request.user, owner=owner, name=name, version=form.get("version"),
            # The page sends the input as typed; a JSON value given as such is sent as JSON.
            body=(given if isinstance(given, str) else json.dumps(given)).encode(),
            content_type="text/plain" if kind == "text" else "application/json",
            options=services.CallOptions(timeout=60, stdout=True),
            api_base=services.platform_api_base(request))
    except ApplicationError as error:
        return JsonResponse(error_body(error.message, error.error_type), status=error.status_code)
    return JsonResponse({**envelope, "request_id": str(invocation.request_id)})


def artifact_download(request: HttpRequest, sha256: str) -> HttpResponse:
    """A build artifact for a Kubernetes runner pod's init container. The URL is signed by
    the platform for one artifact (its path and content hash); the pod checks the bytes'
    SHA-256 itself. Streamed, never read whole into memory."""
    import hmac

    from django.core.files.storage import storages
    from django.http import Http404

    from execution.backends.kubernetes import artifact_signature
    from marketplace.streaming import streaming_response

    path = request.GET.get("path", "")
    if not path.startswith("artifacts/") or ".." in path or not hmac.compare_digest(
            artifact_signature(path, sha256), request.GET.get("sig", "")):
        raise Http404("No such artifact.")
    storage = storages["sources"]
    if not storage.exists(path):
        raise Http404("No such artifact.")
    return streaming_response(request, storage.open(path, "rb"), "application/gzip")
