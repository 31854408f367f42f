"""Composition: SeeFood calls a specialist with a derived key; the tree is recorded."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import Algorithmia
import pytest
from Algorithmia.errors import AlgorithmException
from django.test import Client as DjangoClient

from execution.models import Invocation
from marketplace.models import ApiKey
from tests.catalog.conftest import DEMO
from tests.conftest import (require_env, start_worker, stop_worker, wait_closed,
                            wait_for_worker)
from tests.execution.conftest import publish

pytestmark = pytest.mark.django_db(transaction=True)

DEMOS = DEMO.parent


def demo_bundle(name: str) -> dict:
    root = DEMOS / name
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


@pytest.fixture
def seefood(user):
    publish(user, "fruit", demo_bundle("fruit"))
    publish(user, "vegetable", demo_bundle("vegetable"))
    return publish(user, "seefood", demo_bundle("seefood"), pipeline_enabled=True)


def test_seefood_calls_a_specialist_and_records_the_tree(client, user, seefood):
    answer = client.algo(f"{user.username}/seefood").pipe({"food": "banana",
                                                           "owner": user.username}).result
    assert answer == {"verdict": "fruit", "details": {"food": "banana", "is": "fruit",
                                                      "kind": "berry", "color": "yellow"}}
    wait_closed()  # (a call's close, which retires its key, may trail its answer)
    root = Invocation.objects.get(algorithm_path=f"{user.username}/seefood")
    child = Invocation.objects.get(parent=root)
    assert child.algorithm_path == f"{user.username}/fruit"
    assert (child.trace_id, child.depth, child.caller) == (root.trace_id, 1, user)
    # The derived key was retired when the call ended; it could read data (as a running algorithm) and never manage.
    derived = ApiKey.objects.get(pk=root.derived_key_id)
    assert derived.revoked_at is not None and not derived.can_manage
    assert derived.data_access == "read" and derived.parent_id == root.api_key_id
    # It is the platform's, not the user's: not on their keys page, nor in the keys API.
    own = ApiKey.objects.get(pk=root.api_key_id)
    page = DjangoClient()
    page.force_login(user)
    rows = page.get("/account/keys/").content.decode()
    assert f'data-key="{own.prefix}"' in rows and f'data-key="{derived.prefix}"' not in rows
    listed = client.getJsonHelper("/v1/keys")["results"]
    assert [key["id"] for key in listed] == [own.prefix]

    async_call = client.algo(f"{user.username}/seefood").set_options(
        output=__import__("Algorithmia").algorithm.OutputType.void).pipe(
        {"food": "carrot", "owner": user.username})
    deadline = time.monotonic() + 60
    body = {}
    while "result" not in body and time.monotonic() < deadline:
        body = client.getJsonHelper(f"/v1/algo/requests/{async_call.request_id}")
        time.sleep(0.05)
    assert body["result"]["verdict"] == "vegetable"
    wait_closed()  # (the child's close, which records its latency, may trail its answer)
    tree = client.getJsonHelper(f"/v1/algo/requests/{async_call.request_id}")["trace"]["tree"]
    assert tree["algorithm"] == f"{user.username}/seefood"
    assert [c["algorithm"] for c in tree["children"]] == [f"{user.username}/vegetable"]
    assert tree["children"][0]["run_ms"] is not None and tree["total_ms"] >= tree[
        "children"][0]["total_ms"]


def test_an_algorithm_without_pipeline_access_cannot_reach_the_api(client, user):
    publish(user, "fruit", demo_bundle("fruit"))
    publish(user, "seefood", demo_bundle("seefood"))  # pipeline_enabled is off
    with pytest.raises(AlgorithmException) as raised:
        client.algo(f"{user.username}/seefood").pipe({"food": "banana", "owner": user.username})
    assert raised.value.error_type == "AlgorithmError"
    assert "Connection refused" in raised.value.message or "Max retries" in raised.value.message
    assert not Invocation.objects.filter(algorithm_path=f"{user.username}/fruit").exists()


def test_a_cold_start_of_seefood_prewarms_the_specialist_it_usually_calls(client, user):
    from execution.backends.local import LocalBackend
    from execution.services import _target

    fresh = {"id.txt": str(time.time_ns())}  # new content: runners of its own, idle after 1 s
    publish(user, "fruit", {**demo_bundle("fruit"), **fresh}, runner_idle_seconds=1)
    publish(user, "seefood", {**demo_bundle("seefood"), **fresh}, pipeline_enabled=True,
            runner_idle_seconds=1)
    algo = client.algo(f"{user.username}/seefood")
    for food in ("apple", "banana"):  # the call graph: seefood -> fruit, every time
        algo.pipe({"food": food, "owner": user.username})
    fruit_target = _target(Invocation.objects.filter(algorithm_path__endswith="/fruit").first())
    seefood_target = _target(Invocation.objects.filter(algorithm_path__endswith="/seefood").first())
    backend = LocalBackend()
    deadline = time.monotonic() + 30
    while (backend.runner_count(fruit_target) or backend.runner_count(seefood_target)) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend.runner_count(fruit_target) == backend.runner_count(seefood_target) == 0
    algo.pipe({"food": "cherry", "owner": user.username})
    wait_closed()
    root = Invocation.objects.filter(algorithm_path__endswith="/seefood").order_by(
        "-created_at").first()
    child = Invocation.objects.get(parent=root)
    assert root.cold_start_ms > 0
    assert child.cold_start_ms == 0  # its runner was started with seefood's, not by this call
    assert backend.runner_count(fruit_target) == 1


@pytest.mark.services
def test_compositions_on_every_thread_of_a_worker_lend_their_slots_to_their_children(
        live_server, raw_key, user, seefood, settings, builds_run):
    """Three times as many SeeFood calls at once as the worker has threads: each holds its
    thread while it waits on the specialist it calls, whose call needs a thread too. Without
    lending, no specialist ran and every SeeFood call timed out."""
    require_env("CELERY_BROKER_URL")
    from marketplace.celery import app

    settings.EXECUTION_QUEUE = queue = f"execution-lend-{os.getpid()}"
    worker, log = start_worker(  # 2 threads, on the pool execution workers run
        {"EXECUTION_QUEUE": queue, "CELERY_CUSTOM_WORKER_POOL": "execution.pool:TaskPool"},
        queues=queue, pool=("-P", "custom"))
    foods = ["banana", "carrot", "apple", "potato", "cherry", "onion"]

    def call(food):
        client = Algorithmia.client(raw_key, api_address=live_server.url)
        try:
            return client.algo(f"{user.username}/seefood").set_options(timeout=20).pipe(
                {"food": food, "owner": user.username}).result
        finally:
            client.requestSession.close()

    try:
        wait_for_worker(app, worker)
        with ThreadPoolExecutor(len(foods)) as calls:
            answers = list(calls.map(call, foods))
    finally:
        stop_worker(worker, log)
    assert [(a["verdict"], a["details"]["food"]) for a in answers] == [
        ("fruit", "banana"), ("vegetable", "carrot"), ("fruit", "apple"),
        ("vegetable", "potato"), ("fruit", "cherry"), ("vegetable", "onion")]
    roots = Invocation.objects.filter(algorithm_path=f"{user.username}/seefood")
    wait_closed()
    assert roots.count() == 6 and set(roots.values_list("status", flat=True)) == {"succeeded"}
    assert Invocation.objects.filter(parent__in=roots, status="succeeded").count() == 6


def test_a_called_algorithm_cannot_reach_its_callers_private_algorithms(client, user, probe):
    """The short-lived key an algorithm gets for its own calls is made from its caller's
    key, but the algorithm is someone else's code: it reads and calls only what everyone
    may. (It listed, read and called the caller's private algorithm by build hash with
    stdout, and so printed the caller's secret.)"""
    from catalog.models import Build
    from tests.execution.conftest import bundle_files
    from tests.factories import UserFactory

    diary = publish(user, "diary", bundle_files("probe", rename="diary"), callability="private")
    build = Build.objects.get(algorithm=diary)
    author = UserFactory()
    publish(author, "spy", bundle_files("spy"), pipeline_enabled=True)
    mine = f"/v1/algorithms/{user.username}"
    steps = [["GET", mine], ["GET", f"{mine}/diary"], ["GET", f"{mine}/diary/versions"],
             ["GET", f"{mine}/diary/builds"], ["GET", f"{mine}/diary/builds/{build.build_id}/logs"],
             ["POST", f"/v1/algo/{user.username}/diary/{build.content_hash}?stdout=true",
              {"action": "print", "text": "the diary's secret"}],
             ["POST", f"/v1/algo/{user.username}/diary", "hello"],
             ["POST", f"/v1/algo/{user.username}/probe?stdout=true",
              {"action": "print", "text": "a public algorithm's line"}]]
    # The caller sees their own private algorithm, with their own key.
    assert client.algo(f"{user.username}/diary").pipe("me").result == "echo: me"
    earlier = Invocation.objects.get(algorithm_path=f"{user.username}/diary").request_id
    steps += [["GET", "/v1/me"], ["GET", f"/v1/algo/requests/{earlier}"]]
    replies = client.algo(f"{author.username}/spy").pipe(steps).result
    # Nor the caller's account, nor the caller's other calls' results.
    assert [reply["status"] for reply in replies[8:]] == [403, 404], replies[8:]
    listed = [algorithm["name"] for algorithm in replies[0]["body"]["results"]]
    assert replies[0]["status"] == 200 and listed == ["probe"]  # not "diary"
    assert [reply["status"] for reply in replies[1:7]] == [404] * 6, replies
    assert all(reply["body"]["error"]["error_type"] == "NotFound" for reply in replies[1:7])
    public = replies[7]
    assert public["status"] == 200 and public["body"]["result"] == "printed"
    assert "stdout" not in public["body"]["metadata"]  # it does not manage the algorithm
    assert "secret" not in repr(replies).replace("a public algorithm", "")
    # Nothing of the private algorithm ran for the spy.
    assert Invocation.objects.filter(algorithm_path=f"{user.username}/diary").count() == 1


def test_the_host_header_does_not_choose_where_an_algorithms_requests_go(
        client, user, live_server):
    """The runner's bridge sends an algorithm's API requests, with its key, to the address
    the web process took the call on; a caller's ``Host: 127.0.0.1:<port>`` sent them to any
    service on that port (here, a listener that would have been given the key)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    from tests.execution.conftest import bundle_files
    from tests.factories import UserFactory

    seen = []

    class Listener(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'"the internal service"')

        def log_message(self, *args):
            pass

    listener = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        author = UserFactory()
        publish(author, "spy", bundle_files("spy"), pipeline_enabled=True)
        reply = requests.post(
            f"{live_server.url}/v1/algo/{author.username}/spy",
            json=[["GET", f"/v1/algorithms/{author.username}/spy"]],
            headers={"Authorization": client.apiKey,
                     "Host": f"127.0.0.1:{listener.server_address[1]}"}, timeout=60)
    finally:
        listener.shutdown()
        listener.server_close()
    assert reply.status_code == 200, reply.text
    read = reply.json()["result"][0]
    assert read["status"] == 200 and read["body"]["name"] == "spy"  # the platform answered
    assert seen == []


def test_the_asgi_fast_path_takes_the_address_from_the_socket_not_the_host(settings):
    from execution.asgi import _api_base

    settings.EXECUTION_PLATFORM_API = ""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "store.example"]
    scope = {"type": "http", "scheme": "http", "server": ("127.0.0.1", 8000)}
    assert _api_base(scope, {"host": "127.0.0.1:9911"}) == "http://127.0.0.1:8000"
    assert _api_base(scope, {"host": "store.example"}) == "http://127.0.0.1:8000"
    # Behind a TLS proxy uvicorn's scheme says https; the socket itself speaks HTTP.
    assert _api_base({**scope, "scheme": "https"}, {"host": "store.example"}) == \
        "http://127.0.0.1:8000"
    assert _api_base({**scope, "server": ("::1", 8000)}, {"host": "127.0.0.1"}) == \
        "http://[::1]:8000"
    assert _api_base(scope, {"host": "evil.example"}) is None  # Django refuses it: 400
    assert _api_base({**scope, "server": ("/run/web.sock", None)}, {"host": "127.0.0.1"}) == ""
    settings.EXECUTION_PLATFORM_API = "http://web.internal:8000"
    assert _api_base(scope, {"host": "127.0.0.1:9911"}) == "http://web.internal:8000"
