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
