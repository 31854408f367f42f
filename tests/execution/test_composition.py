"""Composition: SeeFood calls a specialist with a derived key; the tree is recorded."""
import time

import pytest
from Algorithmia.errors import AlgorithmException

from execution.models import Invocation
from marketplace.models import ApiKey
from tests.catalog.conftest import DEMO
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
    root = Invocation.objects.get(algorithm_path=f"{user.username}/seefood")
    child = Invocation.objects.get(parent=root)
    assert child.algorithm_path == f"{user.username}/fruit"
    assert (child.trace_id, child.depth, child.caller) == (root.trace_id, 1, user)
    # The derived key was retired when the call ended; it never had data or manage rights.
    derived = ApiKey.objects.get(pk=root.derived_key_id)
    assert derived.revoked_at is not None and not derived.can_manage
    assert derived.data_access == "none" and derived.parent_id == root.api_key_id

    async_call = client.algo(f"{user.username}/seefood").set_options(
        output=__import__("Algorithmia").algorithm.OutputType.void).pipe(
        {"food": "carrot", "owner": user.username})
    deadline = time.monotonic() + 60
    body = {}
    while "result" not in body and time.monotonic() < deadline:
        body = client.getJsonHelper(f"/v1/algo/requests/{async_call.request_id}")
        time.sleep(0.05)
    assert body["result"]["verdict"] == "vegetable"
    tree = body["trace"]["tree"]
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
