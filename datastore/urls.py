"""The Data API's routes."""
from django.urls import path

from datastore import apis

urlpatterns = [
    # data:// alone is the caller's own namespace (what `algo ls` lists by default).
    path("v1/data/", apis.DataApi.as_view(), {"path": ".my"}, name="api-data-root"),
    path("v1/data/<path:path>", apis.DataApi.as_view(), name="api-data"),
]
