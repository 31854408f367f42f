"""The algorithm page: its console calls with the user's key; it shows measured latency."""
import json

import pytest
from django.test import Client

from execution.models import Invocation

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_console_calls_with_the_users_key_and_the_page_shows_latency(
        probe, user, raw_key, builds_run):
    browser = Client()
    browser.force_login(user)
    response = browser.post(f"/algorithms/{user.username}/probe/try/",
                            data=json.dumps({"input": '{"action": "print", "text": "hi"}',
                                             "content_type": "json"}),
                            content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["result"] == "printed" and body["metadata"]["stdout"] == "hi\n"
    invocation = Invocation.objects.get(request_id=body["request_id"])
    assert invocation.api_key.user == user and raw_key not in response.content.decode()
    for _ in range(3):
        browser.post(f"/algorithms/{user.username}/probe/try/",
                     data=json.dumps({"input": "hello", "content_type": "text"}),
                     content_type="application/json")
    page = browser.get(f"/algorithms/{user.username}/probe/").content.decode()
    assert 'data-testid="latency-0.1.0"' in page and "(4 calls)" in page
    assert "run p50" in page and "call p50" in page


def test_the_console_without_a_key_says_what_to_do(probe, user):
    browser = Client()
    browser.force_login(user)
    response = browser.post(f"/algorithms/{user.username}/probe/try/",
                            data=json.dumps({"input": "x", "content_type": "text"}),
                            content_type="application/json")
    assert response.status_code == 403
    assert "make one on the API keys page" in response.json()["error"]["message"]
