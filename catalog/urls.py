"""The catalog's pages."""
from django.urls import path

from catalog import views

urlpatterns = [
    path("browse/", views.browse, name="browse"),
    path("publish/", views.publish, name="publish"),
]
