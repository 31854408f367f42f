"""Execution fixtures: real algorithms, built and published, called through the full stack."""
import re
import time
import uuid
from pathlib import Path

import Algorithmia
import pytest

from catalog import builder, services
from catalog.models import Build
from tests.catalog.conftest import tar_gz

ALGORITHMS = Path(__file__).resolve().parent / "algorithms"


def bundle_files(name: str, rename: str | None = None) -> dict[str, bytes]:
    root = ALGORITHMS / name
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    if rename:
        files[f"src/{rename}.py"] = files.pop(f"src/{name}.py")
    return files


def publish(owner, name: str, files: dict, *, callability="public", **settings_):
    """Create, upload, build (here, with the builder's own code) and publish."""
    algorithm = services.algorithm_create(actor=owner, owner=owner.username, name=name,
                                          **settings_)
    services.source_bundle_upload(algorithm=algorithm, actor=owner, chunks=iter([tar_gz(files)]))
    build = services.build_create(algorithm=algorithm, actor=owner)
    assert builder.build_run(build.pk) == "succeeded", Build.objects.get(pk=build.pk).logs
    services.version_publish(algorithm=algorithm, actor=owner, version_type="minor",
                             callability=callability)
    return algorithm


@pytest.fixture
def probe(user):
    return publish(user, "probe", bundle_files("probe"), runner_idle_seconds=60)


@pytest.fixture
def client(live_server, raw_key, builds_run):
    client = Algorithmia.client(raw_key, api_address=live_server.url)
    yield client
    client.requestSession.close()


def assert_timeout_is_quick_and_harmless(client, path: str) -> None:
    """``timeout=1`` on a call that sleeps: a TimeoutError within 2 s, and the next call to
    the same algorithm is answered (its runner was replaced)."""
    from Algorithmia.errors import AlgorithmException

    started = time.monotonic()
    with pytest.raises(AlgorithmException) as raised:
        client.algo(path).set_options(timeout=1).pipe({"action": "sleep", "seconds": 30})
    assert time.monotonic() - started < 2
    assert raised.value.error_type == "TimeoutError"
    # The time it had, as a person would write it (it said "within 0.99975 s"; a call that
    # waited in the queue has a little less than its timeout left).
    assert re.fullmatch(r"The algorithm did not answer within (1|0\.\d\d?) s\.",
                        raised.value.message), raised.value.message
    assert client.algo(path).pipe("again").result == "echo: again"


def unique() -> str:
    return uuid.uuid4().hex


def fail_the_first_close(monkeypatch, error: Exception) -> list:
    """Closing a call (``billing.services.usage_finish``) raises ``error`` the first time,
    then closes as usual. Returns the request ids of the closes tried, in order."""
    from billing import services as billing_services

    finish, tried = billing_services.usage_finish, []

    def failing(**kwargs):
        tried.append(kwargs["invocation"].request_id)
        if len(tried) == 1:
            raise error
        return finish(**kwargs)

    monkeypatch.setattr(billing_services, "usage_finish", failing)
    return tried
