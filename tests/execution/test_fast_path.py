"""The invocation fast path (execution.asgi) answers exactly as the Django view does.

Each request goes twice: to the ASGI application under uvicorn (where sync calls with a key
take the fast path) and to the WSGI live server (Django's view). Status, envelope and the
rows written must match; the fast path must actually have served the calls it may serve.
Needs the direct result channel: Redis and a real Celery worker (pass 2).
"""
import base64
import json
import socket
import threading
import time
from types import SimpleNamespace

import Algorithmia
import pytest
import requests
from Algorithmia.algorithm import OutputType

from billing.models import Account, UsageRecord
from execution import asgi as fast_path
from execution.models import Invocation
from tests.conftest import wait_closed, wait_for
from tests.execution.conftest import assert_timeout_is_quick_and_harmless
from tests.factories import UserFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi(request, transactional_db, builds_run, monkeypatch):
    """``marketplace.asgi:application`` under uvicorn, in this process (so its calls can be
    counted: ``served`` holds the thread each admission ran on), on a free port of
    127.0.0.1. Admission runs in a worker thread (this process has no connection pool), or,
    with the parameter "on the loop", on the event loop's thread as it does when the pool
    has a connection idle."""
    import uvicorn

    from marketplace.asgi import application

    served = []
    original = fast_path._start
    monkeypatch.setattr(fast_path, "_start", lambda **kwargs: served.append(
        threading.current_thread()) or original(**kwargs))
    mode, kept = getattr(request, "param", "in a thread"), []
    if mode == "on the loop":  # as when the pool has one idle (this process has no pool)
        monkeypatch.setattr(fast_path, "_pool_lends_at_once",
                            lambda db: kept.append(db) or True)
    else:
        monkeypatch.setattr(fast_path, "_loop_connection_ready", lambda: False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20)
    yield SimpleNamespace(url=f"http://127.0.0.1:{sock.getsockname()[1]}", served=served,
                          mode=mode, loop_thread=thread, kept=kept)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    for db in kept:  # the loop's own connection (the process would end with it)
        if db.connection is not None:
            db.connection.close()


def both(asgi, live_server, method_path: str, **kwargs):
    """The same request to both servers: (fast path's response, Django's response)."""
    method, path = method_path.split(" ", 1)
    return (requests.request(method, asgi.url + path, timeout=30, **kwargs),
            requests.request(method, live_server.url + path, timeout=30, **kwargs))


def same_envelope(fast, slow) -> dict:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers["Content-Type"] == slow.headers["Content-Type"]
    one, other = fast.json(), slow.json()
    for body in (one, other):
        body.get("metadata", {}).pop("duration", None)
    assert one == other
    return one


def admitted_where_asked(asgi) -> None:
    """Every admission the fast path served ran where the fixture's parameter says."""
    on_loop = [thread is asgi.loop_thread for thread in asgi.served]
    assert on_loop and on_loop == [asgi.mode == "on the loop"] * len(on_loop)


@pytest.mark.parametrize("asgi", ["in a thread", "on the loop"], indirect=True)
def test_calls_answer_as_the_view_does(asgi, live_server, probe, user, raw_key):
    base, auth = f"/v1/algo/{user.username}/probe", {"Authorization": raw_key}
    cases = [
        ("json", {"json": {"a": [1, 2]}}, {"result": {"a": [1, 2]},
                                           "metadata": {"content_type": "json"}}),
        ("text", {"data": "hé".encode(), "headers": {"Content-Type": "text/plain"}},
         {"result": "echo: hé", "metadata": {"content_type": "text"}}),
        ("binary", {"data": b"\x00\x01\xff", "headers": {
            "Content-Type": "application/octet-stream"}},
         {"result": base64.b64encode(b"\xff\x01\x00").decode(),
          "metadata": {"content_type": "binary"}}),
    ]
    for label, kwargs, expected in cases:
        headers = {**auth, **kwargs.pop("headers", {})}
        fast, slow = both(asgi, live_server, f"POST {base}", headers=headers, **kwargs)
        assert same_envelope(fast, slow) == expected, label
    # Bearer and Simple schemes, a version, output=raw (bytes and an algorithm's error).
    version = Invocation.objects.filter(algorithm=probe).first().version_text
    for scheme in ("Simple ", "Bearer "):
        fast, slow = both(asgi, live_server, f"POST {base}/{version}?output=raw",
                          data=b"\x01\x02", headers={"Authorization": scheme + raw_key,
                                                     "Content-Type":
                                                     "application/octet-stream"})
        assert fast.status_code == slow.status_code == 200
        assert fast.content == slow.content == b"\x02\x01"
        assert fast.headers["Content-Type"] == "application/octet-stream"
    fast, slow = both(asgi, live_server, f"POST {base}?output=raw",
                      json={"action": "read", "path": "/nonexistent"}, headers=auth)
    assert fast.status_code == slow.status_code == 400
    assert fast.text == slow.text and "nonexistent" in fast.text
    assert len(asgi.served) == 6
    admitted_where_asked(asgi)
    rows = Invocation.objects.filter(algorithm=probe)
    wait_closed(rows)  # (answered before their closes were written)
    assert rows.count() == 12
    assert {row.caller_id for row in rows} == {user.pk}
    wait_for(lambda: not UsageRecord.objects.filter(status="pending").exists(), timeout=30)
    assert UsageRecord.objects.filter(request_id__in=rows.values("request_id")).count() == 12


@pytest.mark.parametrize("asgi", ["in a thread", "on the loop"], indirect=True)
def test_errors_answer_as_the_view_does(asgi, live_server, probe, user, raw_key, settings):
    base, auth = f"/v1/algo/{user.username}/probe", {"Authorization": raw_key}
    json_auth = {**auth, "Content-Type": "application/json"}
    cases = [
        ("bad json", f"POST {base}", {"data": b"{nope", "headers": json_auth}, 400),
        ("xml", f"POST {base}", {"data": b"<x/>", "headers": {
            **auth, "Content-Type": "application/xml"}}, 415),
        ("timeout 0", f"POST {base}?timeout=0", {"json": "x", "headers": auth}, 400),
        ("timeout text", f"POST {base}?timeout=soon", {"json": "x", "headers": auth}, 400),
        ("output", f"POST {base}?output=loud", {"json": "x", "headers": auth}, 400),
        ("too big", f"POST {base}", {"data": b"x" * (settings.EXECUTION_REQUEST_MAX_BYTES + 1),
                                     "headers": {**auth,
                                                 "Content-Type": "application/octet-stream"}},
         413),
        ("missing", f"POST /v1/algo/{user.username}/nothing", {"json": "x", "headers": auth},
         404),
        ("bad version", f"POST {base}/9.9.9", {"json": "x", "headers": auth}, 404),
        ("bad key", f"POST {base}", {"json": "x", "headers": {"Authorization": "nope"}}, 401),
        ("accept", f"POST {base}", {"json": "x", "headers": {**auth, "Accept": "text/html"}},
         406),
        ("no key", f"POST {base}", {"json": "x"}, 401),
    ]
    for label, request, kwargs, status in cases:
        fast, slow = both(asgi, live_server, request, **kwargs)
        assert fast.status_code == status, (label, fast.text)
        envelope = same_envelope(fast, slow)
        assert set(envelope) == {"error"} and envelope["error"]["message"], label
    fast, slow = both(asgi, live_server, f"POST {base}", json="x",
                      headers={"Authorization": "nope"})
    assert fast.headers["WWW-Authenticate"] == slow.headers["WWW-Authenticate"]
    admitted_where_asked(asgi)  # those that reached admission
    assert not Invocation.objects.exists()  # no refused call left a row behind
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize("lock", ["the payer's row", "the accounts table"])
@pytest.mark.parametrize("asgi", ["on the loop"], indirect=True)
def test_a_call_that_meets_a_lock_waits_in_a_thread_not_on_the_loop(
        asgi, probe, user, raw_key, make_key, lock, settings):
    """The payer's account row held by another transaction (a settlement, a payment), or its
    table (a migration): admission on the loop gives up after its short lock wait, having
    written nothing, and is made again in a worker thread, which waits for the lock.
    Meanwhile the process answers other requests (and, for a row, other payers' calls); the
    call is admitted once and answered."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from tests.conftest import database_url_for_subprocess

    url, other_key = f"{asgi.url}/v1/algo/{user.username}/probe", make_key(UserFactory())
    for key in (raw_key, other_key):  # both callers' accounts open
        assert requests.post(url, json="warm", headers={"Authorization": key},
                             timeout=30).json()["result"] == "echo: warm"
    payer, before = Account.objects.get(user=user), len(asgi.served)
    table = Account._meta.db_table
    with psycopg.connect(database_url_for_subprocess()) as locker, ThreadPoolExecutor(1) as pool:
        if lock == "the payer's row":
            locker.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [payer.pk])
        else:
            locker.execute(f"LOCK TABLE {table} IN SHARE MODE")
        held = pool.submit(requests.post, url, json="held", headers={"Authorization": raw_key},
                           timeout=60)
        wait_for(lambda: len(asgi.served) == before + 2, timeout=20)  # the loop, a thread
        assert requests.get(f"{asgi.url}/no-such-page", timeout=10).status_code == 404
        if lock == "the payer's row":
            other = requests.post(url, json="meanwhile", headers={"Authorization": other_key},
                                  timeout=10)
            assert other.status_code == 200 and other.json()["result"] == "echo: meanwhile"
        assert not held.done()
        locker.rollback()
        response = held.result(timeout=30)
    assert response.status_code == 200 and response.json()["result"] == "echo: held"
    assert [thread is asgi.loop_thread for thread in asgi.served[before:before + 2]] == [
        True, False]
    mine = Invocation.objects.filter(caller=user)
    wait_closed(mine)
    assert sorted(mine.values_list("status", flat=True)) == ["succeeded", "succeeded"]
    assert UsageRecord.objects.filter(payer_id=payer.pk).count() == 2
    wait_for(lambda: Account.objects.get(pk=payer.pk).reserved == 0, timeout=30)
    # The loop kept its connection through it, and with it its limits.
    assert requests.post(url, json="after", headers={"Authorization": raw_key},
                         timeout=30).json()["result"] == "echo: after"
    assert asgi.served[-1] is asgi.loop_thread
    loop_connection = asgi.kept[-1].connection  # (idle now: its lock lets this thread ask)
    assert [loop_connection.execute(f"SHOW {name}").fetchone()[0] for name in (
        "lock_timeout", "statement_timeout")] == ["20ms", "1s"]
    # The loop's attempt went early, and its worker took the word that it was refused.
    import redis

    assert not redis.Redis.from_url(settings.REDIS_URL).keys("algostore:admission:*")


def test_private_algorithms_and_credits(asgi, live_server, probe, user, raw_key, make_key):
    from tests.execution.conftest import bundle_files, publish

    publish(user, "hidden", bundle_files("probe", rename="hidden"), callability="private")
    outsider = {"Authorization": make_key(UserFactory())}
    fast, slow = both(asgi, live_server, f"POST /v1/algo/{user.username}/hidden",
                      json="x", headers=outsider)
    assert fast.status_code == 404 and same_envelope(fast, slow)["error"]["error_type"] == \
        "NotFound"
    # A caller who cannot afford the hold gets 402 before any work, with nothing recorded.
    Account.objects.filter(user=user).update(balance=0)
    fast, slow = both(asgi, live_server, f"POST /v1/algo/{user.username}/hidden",
                      json="x", headers={"Authorization": raw_key})
    assert fast.status_code == 402
    assert same_envelope(fast, slow)["error"]["error_type"] == "PaymentRequired"
    assert not Invocation.objects.exists() and not UsageRecord.objects.exists()


@pytest.mark.parametrize("asgi", ["on the loop"], indirect=True)
def test_a_call_sent_before_its_admission_runs_once_admitted_and_never_if_refused(
        asgi, user, raw_key, settings, monkeypatch):
    """Early dispatch (execution.early_dispatch): admitted on the loop with no other call
    waiting, a call's task is sent before its row is written, and its worker runs it once
    told the admission was. A call the admission refuses is never run: this algorithm would
    connect to a port the test listens on. The word is taken each time; none is left."""
    import redis

    from tests.execution.conftest import bundle_files, publish

    publish(user, "dialer", bundle_files("probe", rename="dialer"), network_access="full")
    sent, original = [], fast_path.services.invocation_send

    def send(**kwargs):  # on the loop's thread, its connection: is the row written yet?
        sent.append((kwargs.get("early", False), Invocation.objects.filter(
            request_id=kwargs["invocation"].request_id).exists()))
        return original(**kwargs)

    monkeypatch.setattr(fast_path.services, "invocation_send", send)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        dial = {"action": "connect", "host": "127.0.0.1", "port": listener.getsockname()[1]}
        url, auth = f"{asgi.url}/v1/algo/{user.username}/dialer", {"Authorization": raw_key}
        response = requests.post(url, json=dial, headers=auth, timeout=30)
        assert response.status_code == 200 and response.json()["result"] == "connected"
        assert sent == [(True, False)]  # sent early, before its row existed
        listener.settimeout(5)
        listener.accept()[0].close()  # the algorithm ran: it connected
        wait_closed()
        row = Invocation.objects.get()
        assert (row.status, row.queue_ms >= 0, row.total_ms > 0) == ("succeeded", True, True)
        usage = UsageRecord.objects.get(request_id=row.request_id)
        assert usage.status in ("pending", "settled") and usage.invocation_id == row.pk
        wait_for(lambda: Account.objects.get(user=user).reserved == 0, timeout=30)

        Account.objects.filter(user=user).update(balance=0)
        refused = requests.post(url, json=dial, headers=auth, timeout=30)
        assert refused.status_code == 402
        assert refused.json()["error"]["error_type"] == "PaymentRequired"
        assert sent[1:] == [(True, False)]  # this one too went before its admission
        listener.settimeout(3)
        with pytest.raises(socket.timeout):  # and its algorithm never ran
            listener.accept()
    assert Invocation.objects.count() == 1 and UsageRecord.objects.count() == 1
    assert not redis.Redis.from_url(settings.REDIS_URL).keys("algostore:admission:*")


@pytest.mark.parametrize("asgi", ["on the loop"], indirect=True)
def test_a_composing_call_sent_early_gets_its_key_once_admitted(asgi, probe, user, raw_key,
                                                                monkeypatch):
    """A pipeline-enabled algorithm's key is written with its call's row: sent early, its
    worker waits for the word before it (here the admission is slowed down, so the worker
    is there first); the algorithm then calls another with it."""
    from tests.execution.conftest import bundle_files, publish

    publish(user, "spy", bundle_files("spy"), pipeline_enabled=True)
    sent, original = [], fast_path.services.invocation_send
    monkeypatch.setattr(fast_path.services, "invocation_send", lambda **kwargs: (
        sent.append(kwargs.get("early", False)), original(**kwargs))[1])
    reserve = fast_path.services.billing_services.usage_reserve
    monkeypatch.setattr(fast_path.services.billing_services, "usage_reserve",
                        lambda **kwargs: (time.sleep(0.5), reserve(**kwargs))[1])
    response = requests.post(
        f"{asgi.url}/v1/algo/{user.username}/spy", timeout=60,
        json=[["POST", f"/v1/algo/{user.username}/probe", "child"]],
        headers={"Authorization": raw_key})
    assert response.status_code == 200, response.text
    [child] = response.json()["result"]
    assert child["status"] == 200 and child["body"]["result"] == "echo: child"
    assert sent == [True, False]  # the parent early; its child while the parent waited
    wait_closed()
    parent = Invocation.objects.get(algorithm__name="spy")
    assert parent.status == "succeeded" and parent.derived_key_id is not None
    assert Invocation.objects.get(parent=parent).status == "succeeded"


@pytest.mark.parametrize("asgi", ["on the loop"], indirect=True)
def test_an_admitted_call_its_worker_cannot_be_told_of_is_closed_at_once(
        asgi, probe, user, raw_key, monkeypatch):
    """The admission is written but the word for its worker cannot be pushed (Redis
    failed): the worker will not run it, so the caller's 500 comes with the call closed,
    unbilled, its hold released; not left for the reaper."""
    import redis

    from execution import early_dispatch

    def fails(invocation):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(early_dispatch, "admitted", fails)
    response = requests.post(f"{asgi.url}/v1/algo/{user.username}/probe", json="x",
                             headers={"Authorization": raw_key}, timeout=30)
    assert response.status_code == 500
    assert response.json()["error"]["error_type"] == "InternalError"
    row = Invocation.objects.get(algorithm=probe)
    assert (row.status, row.error_type) == ("failed", "InternalError")
    usage = UsageRecord.objects.get(request_id=row.request_id)
    assert (usage.status, usage.held) == ("released", 0)
    assert Account.objects.get(user=user).reserved == 0


def test_an_admitted_call_whose_send_fails_is_closed_at_once(asgi, probe, user, raw_key,
                                                             monkeypatch):
    """Sent after its admission (here admitted in a thread: never early), a call whose send
    to the broker fails is closed, unbilled, before its caller's 500."""
    import redis

    from marketplace import broker

    def fails(*args, **kwargs):
        raise redis.ConnectionError("the broker went away")

    monkeypatch.setattr(broker, "send_unread_task", fails)
    response = requests.post(f"{asgi.url}/v1/algo/{user.username}/probe", json="x",
                             headers={"Authorization": raw_key}, timeout=30)
    assert response.status_code == 500
    row = Invocation.objects.get(algorithm=probe)
    assert (row.status, row.error_type) == ("failed", "InternalError")
    assert UsageRecord.objects.get(request_id=row.request_id).status == "released"
    assert Account.objects.get(user=user).reserved == 0


def test_a_trailing_slash_takes_the_fast_path_too(asgi, probe, user, raw_key):
    for path in ("probe/", "probe/latest/"):
        response = requests.post(f"{asgi.url}/v1/algo/{user.username}/{path}", json="x",
                                 headers={"Authorization": raw_key}, timeout=30)
        assert response.status_code == 200 and response.json()["result"] == "echo: x"
    assert len(asgi.served) == 2  # both admitted by the fast path, not Django's view


def test_the_official_client_through_the_fast_path(asgi, probe, user, raw_key, make_key):
    client = Algorithmia.client(raw_key, api_address=asgi.url)
    algo = client.algo(f"{user.username}/probe")
    assert algo.pipe("world").result == "echo: world"
    assert algo.pipe({"k": 1}).result == {"k": 1}
    assert algo.pipe(bytearray(b"ab")).result == b"ba"
    mine = client.algo(f"{user.username}/probe").set_options(stdout=True)
    assert mine.pipe({"action": "print", "text": "look"}).metadata.stdout == "look\n"
    other = Algorithmia.client(make_key(UserFactory()), api_address=asgi.url)
    theirs = other.algo(f"{user.username}/probe").set_options(stdout=True)
    assert theirs.pipe({"action": "print", "text": "secret"}).metadata.stdout is None
    assert_timeout_is_quick_and_harmless(client, f"{user.username}/probe")
    # Async calls go through the view: a request id now, the result later.
    void = client.algo(f"{user.username}/probe").set_options(output=OutputType.void).pipe(
        "later")
    wait_for(lambda: Invocation.objects.get(request_id=void.request_id).status == "succeeded")
    assert len(asgi.served) == 7  # every call but the async one
    client.requestSession.close()
    other.requestSession.close()


def test_a_call_longer_than_the_redis_clients_socket_timeout_gets_its_result(
        asgi, live_server, probe, user, raw_key):
    """redis-py stops reading a reply after 5 s by default: a caller's wait on the result
    channel must not (it once failed every call that ran longer, on both paths)."""
    from concurrent.futures import ThreadPoolExecutor

    body = {"action": "sleep", "seconds": 6}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda url: requests.post(
            f"{url}/v1/algo/{user.username}/probe", json=body,
            headers={"Authorization": raw_key}, timeout=60), (asgi.url, live_server.url)))
    for response in answers:
        assert response.status_code == 200, response.text
        assert response.json()["result"] == "slept"
    assert len(asgi.served) == 1
    wait_closed()
    assert sorted(Invocation.objects.values_list("status", flat=True)) == [
        "succeeded", "succeeded"]


def test_a_call_no_worker_answers_fails_and_is_not_billed(asgi, probe, user, raw_key, settings,
                                                          monkeypatch):
    """The wait ends with no result (here: the call was queued where no worker listens):
    the caller gets a TimeoutError envelope, the row is failed and the hold released."""
    import redis

    settings.EXECUTION_QUEUE = f"nowhere-{time.time_ns()}"
    monkeypatch.setattr(fast_path.services, "invocation_wait_seconds", lambda invocation: 1)
    try:
        response = requests.post(f"{asgi.url}/v1/algo/{user.username}/probe", json="x",
                                 headers={"Authorization": raw_key}, timeout=30)
    finally:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(settings.EXECUTION_QUEUE)
    assert response.status_code == 200
    assert response.json()["error"] == {
        "message": "The call did not finish: its worker stopped or never answered.",
        "error_type": "TimeoutError"}
    row = Invocation.objects.get(algorithm=probe)
    assert row.status == "failed" and row.error_type == "TimeoutError"
    usage = UsageRecord.objects.get(request_id=row.request_id)
    assert usage.status == "released" and usage.held == 0
    assert Account.objects.get(user=user).reserved == 0
    assert len(asgi.served) == 1


def test_a_client_that_leaves_mid_body_gets_nothing_admitted(asgi, probe, user, raw_key):
    """As under Django: a body cut off by a disconnect is not a call. The same request
    with its whole body is served by the fast path and answered."""
    import asyncio

    from marketplace.asgi import application

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": f"/v1/algo/{user.username}/probe",
             "raw_path": b"", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"authorization", raw_key.encode()),
                         (b"content-type", b"text/plain")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}

    def exchange(*messages):
        incoming, sent = list(messages), []

        async def receive():
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        asyncio.run(application(scope, receive, send))
        return sent

    cut = exchange({"type": "http.request", "body": b"half", "more_body": True},
                   {"type": "http.disconnect"})
    assert cut == [] and not Invocation.objects.exists() and asgi.served == []
    whole = exchange({"type": "http.request", "body": b"half", "more_body": True},
                     {"type": "http.request", "body": b" and half", "more_body": False})
    assert whole[0]["status"] == 200
    assert json.loads(whole[1]["body"])["result"] == "echo: half and half"
    wait_closed()
    assert len(asgi.served) == 1 and Invocation.objects.get().status == "succeeded"
