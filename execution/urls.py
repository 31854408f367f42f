"""The invocation API's routes, and the algorithm page's console."""
from django.urls import path

from execution import apis, views

urlpatterns = [
    path("v1/algo/requests/<str:request_id>", apis.RequestResultApi.as_view(),
         name="api-request"),
    path("v1/algo/<str:owner>/<str:name>", apis.AlgoInvokeApi.as_view(), name="api-invoke"),
    path("v1/algo/<str:owner>/<str:name>/<str:version>", apis.AlgoInvokeApi.as_view(),
         name="api-invoke-version"),
    # The same with a trailing slash (typed by hand, or joined by a client): it was a 404.
    path("v1/algo/requests/<str:request_id>/", apis.RequestResultApi.as_view()),
    path("v1/algo/<str:owner>/<str:name>/", apis.AlgoInvokeApi.as_view()),
    path("v1/algo/<str:owner>/<str:name>/<str:version>/", apis.AlgoInvokeApi.as_view()),
    path("algorithms/<str:owner>/<str:name>/try/", views.try_call, name="algorithm-try"),
    path("internal/artifacts/<str:sha256>", views.artifact_download, name="internal-artifact"),
]
