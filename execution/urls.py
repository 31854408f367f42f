"""The invocation API's routes, and the algorithm page's console."""
from django.urls import path, re_path

from execution import apis, views

# Each with or without a trailing slash (typed by hand, or joined by a client).
urlpatterns = [
    re_path(r"^v1/algo/requests/(?P<request_id>[^/]+)/?$", apis.RequestResultApi.as_view(),
            name="api-request"),
    re_path(r"^v1/algo/(?P<owner>[^/]+)/(?P<name>[^/]+)/?$", apis.AlgoInvokeApi.as_view(),
            name="api-invoke"),
    re_path(r"^v1/algo/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<version>[^/]+)/?$",
            apis.AlgoInvokeApi.as_view(), name="api-invoke-version"),
    path("algorithms/<str:owner>/<str:name>/try/", views.try_call, name="algorithm-try"),
    path("internal/artifacts/<str:sha256>", views.artifact_download, name="internal-artifact"),
]
