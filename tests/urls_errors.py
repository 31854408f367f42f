"""A URLconf for the error-envelope tests: the real routes plus views that fail on purpose."""
from django.http import HttpResponse
from django.urls import path
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.urls import urlpatterns as site_urlpatterns


class BoomApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("secret internals must not leak")


class EchoApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    parser_classes = [JSONParser]

    def post(self, request):
        return Response({"got": request.data})


def plain_boom(request):
    raise RuntimeError("a plain Django view failed")


def plain_ok(request):
    return HttpResponse("ok")


urlpatterns = [
    path("v1/test/boom", BoomApi.as_view()),
    path("v1/test/echo", EchoApi.as_view()),
    path("v1/test/plain-boom", plain_boom),
    path("v1/test/plain-body", lambda request: HttpResponse(len(request.body))),
    *site_urlpatterns,
]
