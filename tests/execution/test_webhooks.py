"""Completion webhooks: signed with HMAC-SHA256, retried, failures visible to the caller."""
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import wait_for

from execution.models import WebhookDelivery
from marketplace.services import webhook_secret

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    """A local HTTP receiver; ``fail_first`` makes it answer 500 that many times."""
    state = {"received": [], "fail_first": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["received"].append((dict(self.headers), body))
            status = 500 if len(state["received"]) <= state["fail_first"] else 204
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/hook"
    yield state
    server.shutdown()


def call_with_callback(client, user, url) -> str:
    response = client.requestSession.post(
        f"{client.apiAddress}/v1/algo/{user.username}/probe?callback={url}&output=void",
        json={"action": "echo", "value": 7}, headers={"Authorization": client.apiKey})
    assert response.status_code == 200, response.text
    return response.json()["request_id"]



def test_a_finished_call_is_announced_with_a_valid_signature(client, probe, user, receiver):
    request_id = call_with_callback(client, user, receiver["url"])
    wait_for(lambda: receiver["received"])
    headers, body = receiver["received"][0]
    payload = json.loads(body)
    assert payload == {"request_id": request_id, "status": "succeeded",
                       "result": {"action": "echo", "value": 7},
                       "metadata": payload["metadata"]}
    timestamp, signature = [part.split("=", 1)[1]
                            for part in headers["X-Algostore-Signature"].split(",")]
    expected = hmac.new(webhook_secret(user).encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())
    shown = client.getJsonHelper(f"/v1/algo/requests/{request_id}")["callback"]
    assert (shown["status"], shown["attempts"], shown["last_status_code"]) == ("delivered", 1, 204)


def test_a_failing_receiver_is_retried_then_reported(client, probe, user, receiver):
    receiver["fail_first"] = 99
    request_id = call_with_callback(client, user, receiver["url"])
    wait_for(lambda: WebhookDelivery.objects.filter(status="failed").exists())
    assert len(receiver["received"]) == 3  # WEBHOOK_MAX_ATTEMPTS in the test settings
    shown = client.getJsonHelper(f"/v1/algo/requests/{request_id}")["callback"]
    assert (shown["status"], shown["attempts"], shown["last_error"]) == ("failed", 3, "HTTP 500")


def test_a_receiver_that_recovers_gets_the_call(client, probe, user, receiver):
    receiver["fail_first"] = 1
    call_with_callback(client, user, receiver["url"])
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())
    assert len(receiver["received"]) == 2


def test_a_non_https_callback_is_refused_in_production(client, probe, user, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    response = client.requestSession.post(
        f"{client.apiAddress}/v1/algo/{user.username}/probe?callback=http://example.com/x",
        json="x", headers={"Authorization": client.apiKey})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "callback must be an https:// URL."


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/x", "https://localhost:8000/x", "https://10.1.2.3/x",
    "https://192.168.0.1/x", "https://169.254.169.254/latest/meta-data/", "https://[::1]/x",
    "https://[::ffff:127.0.0.1]/x", "https://0.0.0.0/x", "https://100.64.0.1/x",
    "https://224.0.0.1/x"])
def test_a_callback_into_the_platforms_own_networks_is_refused(client, probe, user, settings,
                                                               url):
    """Else any caller could make the platform POST to its own services or the cloud's
    metadata endpoint. Refused before anything runs: no call is recorded."""
    from execution.models import Invocation

    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    response = client.requestSession.post(
        f"{client.apiAddress}/v1/algo/{user.username}/probe?callback={url}&output=void",
        json="x", headers={"Authorization": client.apiKey})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["error_type"] == "InputError"
    assert "is not a public address" in response.json()["error"]["message"]
    assert not Invocation.objects.exists()


def test_a_public_callback_is_accepted_and_a_bad_one_is_told_why(settings):
    from execution.webhooks import validate_callback
    from marketplace.errors import InputError

    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    url = "https://93.184.216.34:8443/hook?x=1"  # an address on the internet (no lookup)
    assert validate_callback(url) == url
    for bad, message in (("https://no-such-host.invalid/x", "does not resolve"),
                         ("https://example.com:port/x", "port must be a number")):
        with pytest.raises(InputError, match=message):
            validate_callback(bad)


def test_a_delivery_checks_the_address_again_and_posts_nothing_inside(client, probe, user,
                                                                      receiver, settings):
    """A name that resolved outside when the call was made may resolve inside later: each
    delivery looks again, and posts only to the address it checked."""
    from execution import webhooks

    call_with_callback(client, user, receiver["url"])
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    again = WebhookDelivery.objects.get()  # as if it were still to be delivered
    WebhookDelivery.objects.filter(pk=again.pk).update(status="pending", attempts=0)
    assert webhooks.deliver(again.pk) == "retry"
    again.refresh_from_db()
    assert (again.status, again.attempts, again.last_status_code) == ("pending", 1, None)
    assert "is not a public address" in again.last_error
    assert len(receiver["received"]) == 1  # only the first delivery, when it was allowed
