"""Routing several one-operation API classes that share a URL, by HTTP method."""
from django.views.decorators.csrf import csrf_exempt

from marketplace.errors import error_response


def by_method(**views):
    """``path("v1/keys", by_method(get=KeyListApi, post=KeyCreateApi))``."""
    handlers = {method.upper(): view.as_view() for method, view in views.items()}
    allowed = ", ".join(sorted(handlers))

    @csrf_exempt
    def dispatch(request, *args, **kwargs):
        handler = handlers.get(request.method)
        if handler is None:
            response = error_response(405, f"Method {request.method} not allowed.", "InputError")
            response["Allow"] = allowed
            return response
        return handler(request, *args, **kwargs)

    return dispatch
