"""The site shell's pages, health and the health WebSocket."""
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from marketplace.asgi import application

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/browse/", "/docs/", "/login/", "/signup/"])
def test_public_pages_render_with_the_navigation(path):
    response = Client().get(path)
    assert response.status_code == 200
    html = response.content.decode()
    for label, href in [("Browse", "/browse/"), ("Publish", "/publish/"),
                        ("Dashboard", "/dashboard/"), ("Docs", "/docs/")]:
        assert f'href="{href}"' in html and f">{label}</a>" in html
    assert "https://" not in html.split("<body>")[0]  # no CDN in the head: works offline


def test_account_menu_for_a_signed_in_user(user):
    client = Client()
    client.force_login(user)
    html = client.get("/dashboard/").content.decode()
    assert user.username in html and 'action="/logout/"' in html and "/account/keys/" in html


def test_docs_pages_are_rendered_from_markdown():
    response = Client().get("/docs/")
    assert b"<h1" in response.content and b"Algostore documentation" in response.content
    assert Client().get("/docs/no-such-page/").status_code == 404


def test_organization_pages(user):
    client = Client()
    client.force_login(user)
    response = client.post("/orgs/", {"name": "webteam", "label": "Web team", "email": "",
                                      "url": ""})
    assert response.status_code == 302 and response["Location"] == "/orgs/webteam/"
    assert b"Web team" in client.get("/orgs/webteam/").content


def test_someone_elses_organization_page_is_404(user):
    from marketplace import services
    from tests.factories import UserFactory

    services.organization_create(actor=UserFactory(), name="private_org")
    client = Client()
    client.force_login(user)
    assert client.get("/orgs/private_org/").status_code == 404


def test_healthz_reports_each_part():
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == body["cache"] == body["channel_layer"] == "ok"


async def health_over_websocket() -> dict:
    communicator = WebsocketCommunicator(application, "/ws/health",
                                         headers=[(b"host", b"127.0.0.1"),
                                                  (b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    return message


def test_health_websocket_round_trips_through_the_channel_layer(settings):
    message = async_to_sync(health_over_websocket)()
    expected = "RedisChannelLayer" if "redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"] \
        else "InMemoryChannelLayer"
    assert message == {"status": "ok", "layer": expected}


def test_websocket_from_a_foreign_origin_is_refused():
    async def connect():
        communicator = WebsocketCommunicator(application, "/ws/health",
                                             headers=[(b"host", b"127.0.0.1"),
                                                      (b"origin", b"http://evil.example")])
        connected, _ = await communicator.connect()
        return connected

    assert async_to_sync(connect)() is False
