"""The catalog's pages. Browsing and publishing fill in as the catalog lands."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def browse(request: HttpRequest) -> HttpResponse:
    return render(request, "catalog/browse.html", {"algorithms": []})


@login_required
def publish(request: HttpRequest) -> HttpResponse:
    return render(request, "catalog/publish.html")
