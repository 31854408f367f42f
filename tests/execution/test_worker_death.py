"""A worker process that dies mid-call: the call is run again, and finishes exactly once."""
import os
import signal
import subprocess

import pytest

from tests.conftest import wait_for

from execution.models import Invocation

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]



def test_a_call_whose_worker_dies_is_run_again_and_never_twice_once_finished(
        client, probe, user, celery_worker):
    response = client.requestSession.post(
        f"{client.apiAddress}/v1/algo/{user.username}/probe?output=void",
        json={"action": "sleep", "seconds": 2}, headers={"Authorization": client.apiKey})
    request_id = response.json()["request_id"]
    wait_for(lambda: Invocation.objects.filter(request_id=request_id, status="running").exists())
    children = subprocess.run(["pgrep", "-P", str(celery_worker.pid)], capture_output=True,
                              text=True).stdout.split()
    assert children, "the worker has pool processes"
    for pid in children:  # the process running the call dies, as an OOM kill would do it
        os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: Invocation.objects.filter(request_id=request_id,
                                               status__in=["succeeded", "failed"]).exists())
    invocation = Invocation.objects.get(request_id=request_id)
    assert invocation.status == "succeeded" and invocation.result["result"] == "slept"
    finished_at = invocation.finished_at

    # A duplicate delivery of the finished call returns the stored result, running nothing.
    from marketplace.celery import app

    again = app.send_task("execution.invoke", args=[invocation.pk, {"content_type": "json",
                                                                     "data": {"action": "sleep",
                                                                              "seconds": 2}}],
                          queue="execution").get(timeout=30)
    assert again["result"] == "slept"
    invocation.refresh_from_db()
    assert invocation.finished_at == finished_at
    assert client.getJsonHelper(f"/v1/algo/requests/{request_id}")["result"] == "slept"
