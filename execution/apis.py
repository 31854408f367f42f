"""The invocation API: ``POST /v1/algo/{owner}/{name}[/{version}]`` and async results."""
import base64
import json

from django.http import HttpResponse, JsonResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from execution import services
from execution.models import Invocation
from marketplace.parsers import RawBodyParser


class AlgoInvokeApi(APIView):
    parser_classes = [RawBodyParser]

    def post(self, request, owner: str, name: str, version: str | None = None):
        options = services.CallOptions.parse(request.query_params)
        invocation, envelope = services.invocation_call(
            key=request.auth, user=request.user, owner=owner, name=name, version=version,
            body=request._request.body, content_type=request.content_type, options=options,
            api_base=services.platform_api_base(request))
        if options.output == "void":
            return Response({"async": "void", "request_id": str(invocation.request_id)})
        if options.output == "raw":
            return raw_response(envelope)
        return JsonResponse(envelope, status=200)


def raw_response(envelope: dict) -> HttpResponse:
    status, content_type, body = raw_parts(envelope)
    response = HttpResponse(body, status=status, content_type=content_type)
    response.bare_error = status >= 400  # the algorithm's own words, not an envelope
    return response


def raw_parts(envelope: dict) -> tuple[int, str, bytes]:
    """``output=raw``: the bare result; an algorithm's error as 400 text (what the client
    reads). Status, Content-Type and body."""
    if "error" in envelope:
        return 400, "text/plain; charset=utf-8", envelope["error"]["message"].encode()
    kind, result = envelope["metadata"]["content_type"], envelope["result"]
    if kind == "binary":
        return 200, "application/octet-stream", base64.b64decode(result)
    if kind == "text":
        return 200, "text/plain; charset=utf-8", result.encode()
    return 200, "application/json", json.dumps(result).encode()


class RequestResultApi(APIView):
    """The finished envelope of an async call, or its status while it runs."""

    def get(self, request, request_id: str):
        invocation = services.invocation_get_for_caller(request_id=request_id, user=request.user,
                                                        key=request.auth)
        if invocation.status not in Invocation.FINISHED:
            return Response({"status": invocation.status, "request_id": str(invocation.request_id)})
        body = dict(invocation.result)
        body["trace"] = {"trace_id": str(invocation.trace_id),
                         "tree": services.invocation_tree(invocation)}
        delivery = getattr(invocation, "webhook", None)
        if delivery is not None:
            body["callback"] = {"url": delivery.url, "status": delivery.status,
                                "attempts": delivery.attempts,
                                "last_status_code": delivery.last_status_code,
                                "last_error": delivery.last_error or None}
        return JsonResponse(body, status=200)
