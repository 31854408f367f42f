"""The catalog's pages."""
from django.urls import path

from catalog import views

ALGO = "algorithms/<str:owner>/<str:name>/"

urlpatterns = [
    path("browse/", views.browse, name="browse"),
    path("publish/", views.publish, name="publish"),
    path(ALGO, views.algorithm_page, name="algorithm"),
    path(ALGO + "manage/", views.manage, name="algorithm-manage"),
    path(ALGO + "source/", views.upload_source, name="algorithm-upload"),
    path(ALGO + "compile/", views.compile_source, name="algorithm-compile"),
    path(ALGO + "publish/", views.publish_version, name="algorithm-publish"),
    path(ALGO + "delete/", views.delete_algorithm, name="algorithm-delete"),
    path(ALGO + "builds/<str:build_id>/", views.build_page, name="build"),
]
