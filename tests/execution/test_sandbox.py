"""The sandbox: what an algorithm tries is refused or killed with the right error type, and
the next call still works."""
import time

import pytest
from Algorithmia.errors import AlgorithmException
from django.conf import settings

from execution.backends.local import LocalBackend
from execution.models import Invocation
from execution.runner.sandbox import SandboxUnavailable
from tests.conftest import wait_closed
from tests.execution.conftest import bundle_files, publish

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_ENV = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "TMPDIR", "PWD",
                "PYTHONPATH"}


@pytest.fixture
def algo(client, probe, user):
    algo = client.algo(f"{user.username}/probe")
    assert algo.pipe("ready").result == "echo: ready"
    return algo


def refused(algo, payload) -> AlgorithmException:
    with pytest.raises(AlgorithmException) as raised:
        algo.pipe(payload)
    assert algo.pipe("still alive").result == "echo: still alive"
    return raised.value


@pytest.mark.parametrize("host, port", [("127.0.0.1", 5432), ("127.0.0.1", 6379),
                                        ("8.8.8.8", 53)])
def test_no_network_for_an_isolated_algorithm(algo, host, port):
    error = refused(algo, {"action": "connect", "host": host, "port": port})
    assert error.error_type == "AlgorithmError"
    assert "refused" in error.message.lower() or "unreachable" in error.message.lower()


def test_etc_shadow_is_not_there(algo):
    error = refused(algo, {"action": "read", "path": "/etc/shadow"})
    assert "No such file" in error.message


def test_the_platforms_code_settings_and_database_are_not_there(algo):
    for path in [settings.BASE_DIR / "marketplace" / "settings" / "base.py",
                 settings.BASE_DIR / "var" / "db.sqlite3", "/work", "/root/.ssh"]:
        error = refused(algo, {"action": "read", "path": str(path)})
        assert "No such file" in error.message, path


def test_another_algorithms_files_are_not_there(client, algo, user):
    other = publish(user, "other", bundle_files("probe", rename="other"))
    client.algo(f"{user.username}/other").pipe("start it")
    other_artifact = settings.EXECUTION_ARTIFACT_DIR / other.current_source.content_hash
    assert other_artifact.exists()
    error = refused(algo, {"action": "listdir", "path": str(other_artifact)})
    assert "No such file" in error.message
    assert algo.pipe({"action": "listdir", "path": "/algo"}).result == [".complete", "source", "venv"]


def test_the_environment_is_clean_and_the_uid_unprivileged(algo):
    env = algo.pipe({"action": "env"}).result
    assert set(env) <= EXPECTED_ENV
    assert not {k for k in env if "SECRET" in k or "DATABASE" in k or "KEY" in k}
    who = algo.pipe({"action": "whoami"}).result
    assert who["uid"] >= 100_000 and who["hostname"] == "algorithm"


def test_a_fork_bomb_is_stopped_by_the_process_limit(algo):
    error = refused(algo, {"action": "forkbomb"})
    assert error.error_type == "AlgorithmError"
    assert "Resource temporarily unavailable" in error.message


def test_allocating_ten_gigabytes_is_an_out_of_memory_error(algo):
    error = refused(algo, {"action": "alloc", "bytes": 10 * 1024 ** 3})
    assert error.error_type == "OutOfMemoryError"
    assert error.message == "The algorithm ran out of memory."  # MemoryError() said ""


def test_a_missing_bubblewrap_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        LocalBackend()


def test_scale_to_zero_and_back(client, user, settings):
    algorithm = publish(user, "sleepy", bundle_files("probe", rename="sleepy"),
                        runner_idle_seconds=1)
    algo = client.algo(f"{user.username}/sleepy")
    algo.pipe("cold")
    algo.pipe("warm")
    from execution.services import _target

    first = Invocation.objects.filter(algorithm=algorithm).order_by("created_at")
    target = _target(first.first())
    backend = LocalBackend()
    assert backend.runner_count(target) == 1
    deadline = time.monotonic() + 20
    while backend.runner_count(target) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend.runner_count(target) == 0  # scaled to zero after a second idle
    algo.pipe("cold again")
    wait_closed()
    cold, warm, cold_again = [i.cold_start_ms for i in first.all()]
    assert cold > 0 and warm == 0 and cold_again > 0
    assert backend.runner_count(target) == 1
