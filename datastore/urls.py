"""The Data API's routes."""
from django.urls import path

from datastore import apis

urlpatterns = [
    path("v1/data/<path:path>", apis.DataApi.as_view(), name="api-data"),
]
