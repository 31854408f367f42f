"""The catalog's /v1/ routes."""
from django.urls import path

from catalog import apis
from marketplace.api_routing import by_method

ALGO = "algorithms/<str:owner>/<str:name>"

urlpatterns = [
    path("search", apis.SearchApi.as_view(), name="api-search"),
    path("secret-provider", apis.SecretProviderListApi.as_view(), name="api-secret-providers"),
    path("algorithms/<uuid:algorithm_id>/secrets",
         by_method(get=apis.SecretListApi, post=apis.SecretCreateApi), name="api-secrets"),
    path("algorithms/<str:owner>",
         by_method(get=apis.AlgorithmListApi, post=apis.AlgorithmCreateApi), name="api-algorithms"),
    path(ALGO, by_method(get=apis.AlgorithmDetailApi, put=apis.AlgorithmUpdateApi,
                         delete=apis.AlgorithmDeleteApi), name="api-algorithm"),
    path(f"{ALGO}/source", apis.SourceUploadApi.as_view(), name="api-algorithm-source"),
    path(f"{ALGO}/compile", apis.CompileApi.as_view(), name="api-algorithm-compile"),
    path(f"{ALGO}/builds", apis.BuildListApi.as_view(), name="api-builds"),
    path(f"{ALGO}/builds/<str:build_id>", apis.BuildDetailApi.as_view(), name="api-build"),
    path(f"{ALGO}/builds/<str:build_id>/logs", apis.BuildLogsApi.as_view(), name="api-build-logs"),
    path(f"{ALGO}/versions",
         by_method(get=apis.VersionListApi, post=apis.VersionPublishApi), name="api-versions"),
    path(f"{ALGO}/versions/<str:version>", apis.VersionDetailApi.as_view(), name="api-version"),
]
