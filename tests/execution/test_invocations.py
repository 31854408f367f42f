"""Calls through the full stack with the official client: web, dispatch, runner, sandbox."""
import time

import Algorithmia
import pytest
from Algorithmia.algorithm import OutputType
from Algorithmia.errors import AlgorithmException

from execution.models import Invocation
from tests.conftest import wait_closed
from tests.execution.conftest import assert_timeout_is_quick_and_harmless, bundle_files, publish
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_json_text_and_binary_round_trip(client, probe, user):
    algo = client.algo(f"{user.username}/probe")
    assert algo.pipe({"action": "echo", "value": [1, {"a": None}]}).result == {
        "action": "echo", "value": [1, {"a": None}]}
    text = algo.pipe("héllo")
    assert (text.result, text.metadata.content_type) == ("echo: héllo", "text")
    binary = algo.pipe(b"\x00\x01\x02\xff")
    assert (binary.result, binary.metadata.content_type) == (b"\xff\x02\x01\x00", "binary")
    out = algo.pipe({"action": "binary"})
    assert out.result == bytes(range(256))
    assert algo.pipe(None).result is None
    rows = Invocation.objects.filter(algorithm_path=f"{user.username}/probe")
    wait_closed(rows)
    assert rows.count() == 5 and set(rows.values_list("status", flat=True)) == {"succeeded"}
    assert all(r.run_ms is not None and r.total_ms >= r.run_ms for r in rows)


def test_the_hello_adk_algorithm_answers(client, user):
    publish(user, "hello", bundle_files_from_demo())
    assert client.algo(f"{user.username}/hello").pipe("world").result == "Hello, world!"
    assert client.algo(f"{user.username}/hello/0.1.0").pipe({"name": "Ada"}).result == {
        "greeting": "Hello, Ada!"}


def bundle_files_from_demo() -> dict:
    from tests.catalog.conftest import demo_files

    return demo_files()


def test_stdout_is_returned_to_the_owner_only(client, probe, user, live_server, make_key):
    mine = client.algo(f"{user.username}/probe").set_options(stdout=True)
    assert mine.pipe({"action": "print", "text": "look at me"}).metadata.stdout == "look at me\n"
    other = Algorithmia.client(make_key(UserFactory()), api_address=live_server.url)
    theirs = other.algo(f"{user.username}/probe").set_options(stdout=True)
    assert theirs.pipe({"action": "print", "text": "secret"}).metadata.stdout is None
    other.requestSession.close()


def test_void_returns_a_request_id_whose_result_can_be_fetched(client, probe, user):
    response = client.algo(f"{user.username}/probe").set_options(
        output=OutputType.void).pipe({"action": "echo", "value": 42})
    assert response.async_protocol == "void"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.getJsonHelper(f"/v1/algo/requests/{response.request_id}")
        if "result" in body:
            break
        assert body["status"] in ("queued", "running")
        time.sleep(0.05)
    assert body["result"] == {"action": "echo", "value": 42}


def test_raw_output(client, probe, user):
    algo = client.algo(f"{user.username}/probe").set_options(output=OutputType.raw)
    assert algo.pipe("plain") == "echo: plain"


def test_timeout_gives_timeout_error_quickly_and_the_next_call_works(client, probe, user):
    client.algo(f"{user.username}/probe").pipe("warm up")
    assert_timeout_is_quick_and_harmless(client, f"{user.username}/probe")


def test_an_exception_is_an_algorithm_error_with_a_trace_for_the_owner(client, probe, user):
    with pytest.raises(AlgorithmException) as raised:
        client.algo(f"{user.username}/probe").pipe({"action": "raise", "message": "kaput"})
    assert raised.value.error_type == "AlgorithmError"
    assert "kaput" in raised.value.message and "ValueError" in raised.value.stack_trace


def test_a_crashing_process_is_replaced(client, probe, user):
    algo = client.algo(f"{user.username}/probe")
    with pytest.raises(AlgorithmException) as raised:
        algo.pipe({"action": "exit"})
    assert raised.value.error_type == "AlgorithmError"
    assert "exited (code 3)" in raised.value.message
    assert algo.pipe("still here").result == "echo: still here"


def test_bad_requests_get_clear_errors(client, probe, user, settings):
    url = f"{client.apiAddress}/v1/algo/{user.username}/probe"
    headers = {"Authorization": client.apiKey}
    session = client.requestSession
    bad_json = session.post(url, data=b"{nope", headers={**headers,
                                                           "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["error_type"] == "InputError"
    wrong_type = session.post(url, data=b"<x/>", headers={**headers,
                                                          "Content-Type": "application/xml"})
    assert wrong_type.status_code == 415
    bad_timeout = session.post(url + "?timeout=0", json="x", headers=headers)
    assert bad_timeout.status_code == 400 and "timeout" in bad_timeout.json()["error"]["message"]
    too_big = session.post(url, data=b"x" * (settings.EXECUTION_REQUEST_MAX_BYTES + 1),
                           headers={**headers, "Content-Type": "application/octet-stream"})
    assert too_big.status_code == 413
    missing = session.post(f"{client.apiAddress}/v1/algo/{user.username}/nothing", json="x",
                           headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["error_type"] == "NotFound"
    no_key = session.post(url, json="x")
    assert no_key.status_code == 401
    assert not Invocation.objects.filter(status="failed").exists()


def test_a_trailing_slash_calls_the_same_algorithm(client, probe, user):
    for path in (f"{user.username}/probe/", f"{user.username}/probe/latest/"):
        reply = client.requestSession.post(f"{client.apiAddress}/v1/algo/{path}", json="x",
                                           headers={"Authorization": client.apiKey})
        assert reply.status_code == 200 and reply.json()["result"] == "echo: x", path
    request_id = client.algo(f"{user.username}/probe").set_options(
        output=OutputType.void).pipe("y").request_id
    deadline, body = time.monotonic() + 60, {}
    while "result" not in body and time.monotonic() < deadline:
        reply = client.requestSession.get(
            f"{client.apiAddress}/v1/algo/requests/{request_id}/",
            headers={"Authorization": client.apiKey})
        assert reply.status_code == 200, reply.text
        body = reply.json()
    assert body["result"] == "echo: y"


def test_private_algorithms_are_404_and_scopes_are_enforced(live_server, user, make_key):
    from marketplace.services import KeyScopes

    publish(user, "hidden", bundle_files("probe", rename="hidden"), callability="private")
    outsider = Algorithmia.client(make_key(UserFactory()), api_address=live_server.url)
    response = outsider.requestSession.post(f"{live_server.url}/v1/algo/{user.username}/hidden",
                                            json="x", headers={"Authorization": outsider.apiKey})
    assert response.status_code == 404
    narrow = make_key(user, scopes=KeyScopes(["algo://someone/*"], "none", False))
    denied = outsider.requestSession.post(f"{live_server.url}/v1/algo/{user.username}/hidden",
                                          json="x", headers={"Authorization": narrow})
    assert denied.status_code == 403
    outsider.requestSession.close()


def test_void_answers_before_the_call_ends_embedded_too(client, probe, user, settings):
    """output=void answers at once (it waited for the whole call when no broker was set,
    as under make run): a 3-second call's request id comes back while the call still runs."""
    response = client.algo(f"{user.username}/probe").set_options(
        output=OutputType.void).pipe({"action": "sleep", "seconds": 3})
    assert response.async_protocol == "void"
    body = client.getJsonHelper(f"/v1/algo/requests/{response.request_id}")
    assert body["status"] in ("queued", "running") and "result" not in body
    deadline = time.monotonic() + 60
    while "result" not in body and time.monotonic() < deadline:
        time.sleep(0.1)
        body = client.getJsonHelper(f"/v1/algo/requests/{response.request_id}")
    assert body["result"] == "slept"


def test_a_nan_result_and_a_nul_in_stdout_still_close_the_call(client, probe, user):
    """A result of NaN got a 500 and the call stayed "running" with the caller's credits
    held for good; a NUL printed would fail the same closing write on PostgreSQL."""
    from billing.models import Account
    from tests.billing.conftest import settled

    algo = client.algo(f"{user.username}/probe")
    with pytest.raises(AlgorithmException) as raised:
        algo.pipe({"action": "nan"})
    assert raised.value.error_type == "AlgorithmError"
    assert "it holds NaN" in raised.value.message
    printed = algo.set_options(stdout=True).pipe({"action": "print", "text": "a\u0000b"})
    assert printed.result == "printed" and printed.metadata.stdout == "a\ufffdb\n"
    assert algo.pipe("still here").result == "echo: still here"
    calls = Invocation.objects.filter(algorithm_path=f"{user.username}/probe")
    wait_closed(calls)
    assert sorted(calls.values_list("status", flat=True)) == [
        "failed", "succeeded", "succeeded"]
    settled()
    assert Account.objects.get(user=user).reserved == 0
