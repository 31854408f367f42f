"""The invocation API's routes."""
from django.urls import path

from execution import apis

urlpatterns = [
    path("v1/algo/requests/<str:request_id>", apis.RequestResultApi.as_view(),
         name="api-request"),
    path("v1/algo/<str:owner>/<str:name>", apis.AlgoInvokeApi.as_view(), name="api-invoke"),
    path("v1/algo/<str:owner>/<str:name>/<str:version>", apis.AlgoInvokeApi.as_view(),
         name="api-invoke-version"),
]
