"""The algorithm page: its console calls with the user's key; it shows measured latency."""
import contextlib
import html
import io
import json
import re
import shlex

import pytest
import requests
from django.test import Client

from catalog.models import AlgorithmVersion
from execution.models import Invocation
from tests.conftest import wait_closed

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
    wait_closed()  # (the latency shown is the closed calls')
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


def test_the_console_prefers_a_key_without_a_cap_then_the_one_with_most_room(
        probe, user, raw_key, builds_run):
    """A new key with a small cap does not stop the console (it answered 402 with the
    account's credits untouched); with only capped keys, the one with most room is used."""
    from marketplace import services
    from marketplace.models import ApiKey

    services.api_key_create(created_by=user, name="small cap", monthly_spend_cap=1)

    def console_key() -> ApiKey:
        response = Client()
        response.force_login(user)
        answer = response.post(f"/algorithms/{user.username}/probe/try/",
                               data=json.dumps({"input": "hello", "content_type": "text"}),
                               content_type="application/json")
        assert answer.status_code == 200, answer.content
        return Invocation.objects.get(request_id=answer.json()["request_id"]).api_key

    uncapped = console_key()
    assert (uncapped.name, uncapped.monthly_spend_cap) != ("small cap", 1)
    assert uncapped.monthly_spend_cap is None
    services.api_key_set_spend_cap(key=uncapped, cap=10 ** 12, actor=user)
    assert console_key().pk == uncapped.pk  # 10**12 left beats 1
    assert ApiKey.objects.filter(user=user, monthly_spend_cap=1).count() == 1


@pytest.mark.parametrize("sample, answer", [
    ('[true, null, {"a": 1}]', [True, None, {"a": 1}]),
    ('it\'s "plain" text', 'echo: it\'s "plain" text'),
    ('{"not json', 'echo: {"not json')])
def test_the_pages_snippets_run_as_written(probe, user, raw_key, live_server, builds_run,
                                           sample, answer):
    """Whatever the author gave as the sample input, the page's Python and curl snippets
    run and get the algorithm's answer (pasted as they were, a text sample gave
    ``algo.pipe(it's "plain" text)``, and JSON's ``true`` is not Python's)."""
    AlgorithmVersion.objects.filter(algorithm=probe).update(sample_input=sample)
    page = Client().get(f"/algorithms/{user.username}/probe/").content.decode()
    snippets = [html.unescape(code).replace("http://testserver", live_server.url)
                .replace("YOUR_API_KEY", raw_key)
                for code in re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", page, re.S)]
    python = next(code for code in snippets if code.startswith("import Algorithmia"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(python, {})  # noqa: S102 (the page's own snippet, with the test's key)
    assert printed.getvalue() == f"{answer}\n"

    words = shlex.split(next(code for code in snippets if code.startswith("curl ")))
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    response = requests.post(words[-1], data=words[words.index("-d") + 1].encode(),
                             headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == answer
    cli = shlex.split(next(code for code in snippets if code.startswith("export ")))
    assert cli[cli.index("-d") + 1] == sample


@pytest.mark.parametrize("body", [[1], "x", None, 5, {"input": "1", "version": True},
                                  {"input": "1", "version": 1.5},
                                  {"input": "1", "content_type": "xml"}])
def test_a_console_request_that_is_not_the_pages_is_a_400_not_a_500(probe, user, raw_key,
                                                                    body):
    browser = Client()
    browser.force_login(user)
    response = browser.post(f"/algorithms/{user.username}/probe/try/",
                            data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["error_type"] == "InputError"
    assert not Invocation.objects.exists()


def test_the_console_sends_a_json_value_given_as_such_and_a_long_version_is_a_400(
        probe, user, raw_key, builds_run):
    browser = Client()
    browser.force_login(user)
    url = f"/algorithms/{user.username}/probe/try/"
    answer = browser.post(url, data=json.dumps({"input": {"action": "echo", "value": 3}}),
                          content_type="application/json")
    assert answer.status_code == 200 and answer.json()["result"] == {"action": "echo",
                                                                     "value": 3}
    long = browser.post(url, data=json.dumps({"input": "1", "version": "9" * 5000}),
                        content_type="application/json")
    assert long.status_code == 400 and "is not a version" in long.json()["error"]["message"]
