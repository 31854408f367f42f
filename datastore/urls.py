"""The Data API's routes."""
from django.urls import path

from datastore import apis, views

urlpatterns = [
    path("data/", views.data_home, name="data"),
    path("data/<str:owner>/<str:name>/", views.collection_page, name="data-collection"),
    path("data/<str:owner>/<str:name>/upload/", views.upload, name="data-upload"),
    path("data/<str:owner>/<str:name>/acl/", views.set_acl, name="data-acl"),
    path("data/<str:owner>/<str:name>/delete/", views.delete_collection,
         name="data-collection-delete"),
    path("data/<str:owner>/<str:name>/files/<str:file_name>", views.download,
         name="data-download"),
    path("data/<str:owner>/<str:name>/files/<str:file_name>/delete/", views.delete_file,
         name="data-file-delete"),
    # data:// alone is the caller's own namespace (what `algo ls` lists by default).
    path("v1/data/", apis.DataApi.as_view(), {"path": ".my"}, name="api-data-root"),
    path("v1/data/<path:path>", apis.DataApi.as_view(), name="api-data"),
    path("v1/connectors", apis.ConnectorListApi.as_view(), name="api-connectors"),
    path("v1/connectors/<str:connector_id>", apis.ConnectorDetailApi.as_view(),
         name="api-connector"),
]
