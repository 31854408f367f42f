"""Every /v1/ error is the JSON envelope of API.md, never an HTML page."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_errors")]


def envelope(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["error"]


def test_unknown_v1_path_is_404_not_found():
    response = Client().get("/v1/no/such/thing")
    assert response.status_code == 404
    assert envelope(response) == {"message": "Not found.", "error_type": "NotFound"}


def test_unknown_page_outside_v1_stays_html():
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_wrong_method_is_405(api):
    response = api.put("/v1/me")
    assert response.status_code == 405
    assert envelope(response)["error_type"] == "InputError"


def test_wrong_method_on_a_shared_url_is_405_with_allow(api):
    response = api.patch("/v1/keys")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert envelope(response)["message"] == "Method PATCH not allowed."


def test_wrong_content_type_is_415(api):
    response = api.post("/v1/keys", data="name=x", content_type="text/plain")
    assert response.status_code == 415
    assert envelope(response)["error_type"] == "InputError"


def test_malformed_json_is_400(api):
    response = api.post("/v1/keys", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert envelope(response)["error_type"] == "InputError"


def test_too_large_body_is_413_in_drf_views(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = APIClient().post("/v1/test/echo", data='"' + "x" * 4096 + '"',
                                content_type="application/json")
    assert response.status_code == 413
    assert envelope(response) == {"message": "The request body is too large.",
                                  "error_type": "InputError"}


def test_too_large_body_is_413_in_plain_views(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = Client().post("/v1/test/plain-body", data="x" * 4096, content_type="text/plain")
    assert response.status_code == 413
    assert envelope(response)["error_type"] == "InputError"


def test_unhandled_error_in_api_view_is_500_without_internals(caplog):
    response = APIClient().get("/v1/test/boom")
    assert response.status_code == 500
    assert envelope(response) == {"message": "Internal server error.", "error_type": "InternalError"}
    assert "secret internals" not in response.content.decode()


def test_unhandled_error_in_plain_view_is_500_json():
    client = Client(raise_request_exception=False)
    response = client.get("/v1/test/plain-boom")
    assert response.status_code == 500
    assert envelope(response)["error_type"] == "InternalError"
