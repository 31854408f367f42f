"""Real builds (eager, in-process): a virtualenv with the requirements, an artifact, logs."""
import tarfile
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.storage import storages

from catalog import builder, services
from catalog.models import Build
from tests.catalog.conftest import demo_files, tar_gz, upload

pytestmark = pytest.mark.django_db


def build_now(algorithm, user, django_capture_on_commit_callbacks) -> Build:
    """Start a build as the API does, then run it here (the worker's code, in-process)."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        build = services.build_start(algorithm=algorithm, actor=user)
    assert len(callbacks) == 1  # the task is sent once the transaction commits
    builder.build_run(build.pk)
    build.refresh_from_db()
    return build


def test_a_python_build_makes_a_virtualenv_artifact(algorithm, user,
                                                    django_capture_on_commit_callbacks):
    upload(algorithm, user, tar_gz(demo_files(unique=True)))
    build = build_now(algorithm, user, django_capture_on_commit_callbacks)
    assert build.status == "succeeded", build.logs
    assert "Successfully installed" in build.logs and "algorithmia-adk" in build.logs
    with storages["sources"].open(build.artifact_path) as stored, \
            tarfile.open(fileobj=stored, mode="r:gz") as artifact:
        names = set(artifact.getnames())
    assert "source/src/hello.py" in names and "venv/pyvenv.cfg" in names
    assert any(n.startswith("venv/lib/") and n.endswith("/adk/__init__.py") for n in names)
    assert build.finished_at >= build.started_at


def test_rebuilding_the_same_content_reuses_the_artifact(algorithm, user,
                                                         django_capture_on_commit_callbacks):
    files = demo_files(unique=True)
    upload(algorithm, user, tar_gz(files))
    first = build_now(algorithm, user, django_capture_on_commit_callbacks)
    upload(algorithm, user, tar_gz({f"wrapper/{k}": v for k, v in files.items()}))
    second = build_now(algorithm, user, django_capture_on_commit_callbacks)
    assert second.status == "succeeded"
    assert second.reused_from == first and second.artifact_path == first.artifact_path
    assert "reusing its artifact" in second.logs


@pytest.mark.parametrize("line, reason", [
    ("-e git+https://example.com/x.git#egg=x", "is not allowed"),
    ("--index-url http://127.0.0.1:5432/", "is not allowed"),
    ("x @ https://example.com/x.whl", "is not allowed"),
    ("not a requirement!!", "requirements.txt line 1"),
])
def test_unsafe_requirements_fail_the_build_with_a_reason(algorithm, user, line, reason,
                                                          django_capture_on_commit_callbacks):
    upload(algorithm, user, tar_gz({"src/hello.py": "#", "requirements.txt": line}))
    build = build_now(algorithm, user, django_capture_on_commit_callbacks)
    assert build.status == "failed"
    assert reason in build.error_message and reason in build.logs


def test_a_missing_package_fails_the_build(algorithm, user, django_capture_on_commit_callbacks):
    upload(algorithm, user, tar_gz({"src/hello.py": "#",
                                    "requirements.txt": "algostore-no-such-package-xyz==9.9\n"}))
    build = build_now(algorithm, user, django_capture_on_commit_callbacks)
    assert build.status == "failed"
    # Which tool failed, and its own reason (was: "`python -m` failed with exit code 1.").
    assert build.error_message.startswith("`pip download` failed with exit code 1: ERROR: ")
    assert "algostore-no-such-package-xyz" in build.error_message
    assert "algostore-no-such-package-xyz" in build.logs


def test_compile_without_source_is_an_input_error(api, algorithm, user):
    response = api.post(f"/v1/algorithms/{user.username}/hello/compile", {}, format="json")
    assert response.status_code == 400
    assert "no source yet" in response.json()["error"]["message"]


def test_build_log_lines_are_pushed_to_the_channel_group(algorithm, user,
                                                         django_capture_on_commit_callbacks):
    upload(algorithm, user, tar_gz({"src/hello.py": "#", "id.txt": uuid.uuid4().hex}))
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    build = services.build_create(algorithm=algorithm, actor=user)
    async_to_sync(layer.group_add)(builder.build_group(build), channel)
    builder.build_run(build.pk)
    messages = []
    while True:
        try:
            message = async_to_sync(_receive)(layer, channel)
        except TimeoutError:
            break
        messages.append(message)
    text = "".join(m["text"] for m in messages)
    assert "No requirements to install." in text
    assert messages[-1]["status"] == "succeeded"


async def _receive(layer, channel):
    import asyncio

    return await asyncio.wait_for(layer.receive(channel), timeout=1)


@pytest.mark.django_db(transaction=True)
def test_the_build_log_websocket_streams_to_the_owner_and_refuses_others(
        algorithm, user, settings):
    """The consumer sends the log so far, then each chunk the worker pushes, then the end."""
    import asyncio

    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from catalog.consumers import BuildLogConsumer
    from tests.factories import UserFactory

    upload(algorithm, user, tar_gz({"src/hello.py": "#", "id.txt": uuid.uuid4().hex}))
    build = services.build_create(algorithm=algorithm, actor=user)
    Build.objects.filter(pk=build.pk).update(logs="queued\n")

    async def session(as_user):
        communicator = WebsocketCommunicator(BuildLogConsumer.as_asgi(),
                                             f"/ws/builds/{build.build_id}")
        communicator.scope["user"] = as_user
        communicator.scope["url_route"] = {"kwargs": {"build_id": str(build.build_id)}}
        connected, code = await communicator.connect()
        if not connected:
            return connected, code, []
        received = [await communicator.receive_json_from(timeout=5)]
        # As under the ASGI server: the build runs in a worker thread of this event loop.
        worker = asyncio.ensure_future(sync_to_async(builder.build_run,
                                                     thread_sensitive=False)(build.pk))
        while received[-1]["status"] == "in-progress":
            received.append(await communicator.receive_json_from(timeout=30))
        await worker
        await communicator.disconnect()
        return connected, code, received

    connected, code, _ = async_to_sync(session)(UserFactory())
    assert (connected, code) == (False, 4404)

    async def not_a_build_id():  # refused like an unknown build, not a 500 at the handshake
        communicator = WebsocketCommunicator(BuildLogConsumer.as_asgi(), "/ws/builds/zzz")
        communicator.scope["user"] = user
        communicator.scope["url_route"] = {"kwargs": {"build_id": "zzz"}}
        return await communicator.connect()

    assert async_to_sync(not_a_build_id)() == (False, 4404)
    connected, _, received = async_to_sync(session)(user)
    assert connected and received[0] == {"text": "queued\n", "status": "in-progress",
                                         "snapshot": True}
    assert received[-1]["status"] == "succeeded"
    assert "No requirements to install." in "".join(m["text"] for m in received[1:])


@pytest.fixture
def js_algorithm(user):
    return services.algorithm_create(actor=user, owner=user.username, name="jsalgo",
                                     language="javascript")


@pytest.mark.parametrize("manifest, reason", [
    ({"dependencies": {"left-pad": "file:/etc"}}, '"left-pad": "file:/etc" is not allowed'),
    ({"dependencies": {"x": "git+ssh://git@127.0.0.1/x.git"}}, '"x": "git+ssh'),
    ({"optionalDependencies": {"x": "http://127.0.0.1:9912/x.tgz"}}, "optionalDependencies"),
    ({"dependencies": {"x": "npm:left-pad@1"}}, "no aliases"),
    ({"dependencies": {"x": "owner/repo"}}, '"x": "owner/repo"'),
    ({"dependencies": {"x": ".."}}, '"x": ".." is not allowed'),
    ({"overrides": {"a": {"b": "link:../../etc"}}}, '"a > b"'),
    ({"workspaces": ["../../etc"]}, "workspaces are not supported"),
    ("[1, 2", "package.json is not valid JSON"),
])
def test_npm_installs_only_registry_packages(js_algorithm, user, manifest, reason,
                                             django_capture_on_commit_callbacks):
    """npm runs on the build machine: a bundle's package.json must not make it copy the
    host's files (file:, link:) or fetch from anywhere but the registry."""
    import json

    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    upload(js_algorithm, user, tar_gz({"src/jsalgo.js": f"// {uuid.uuid4()}",  # built anew
                                       "package.json": text}))
    build = build_now(js_algorithm, user, django_capture_on_commit_callbacks)
    assert build.status == "failed"
    assert reason in build.error_message and reason in build.logs
    assert "$ npm" not in build.logs  # refused before npm ran


def test_a_bundled_npmrc_and_lockfile_are_not_used(js_algorithm, user,
                                                   django_capture_on_commit_callbacks):
    """A bundle's .npmrc set npm's registry (a service on the platform's host got the
    build's requests) and its lockfile can name any URL: both are dropped before npm runs."""
    upload(js_algorithm, user, tar_gz({
        "src/jsalgo.js": f"// {uuid.uuid4()}", "package.json": '{"name": "jsalgo", "dependencies": {}}',
        ".npmrc": "registry=http://127.0.0.1:9912/npmreg/\n",
        "package-lock.json": '{"packages": {"node_modules/x": '
                             '{"resolved": "http://127.0.0.1:9912/x.tgz"}}}'}))
    build = build_now(js_algorithm, user, django_capture_on_commit_callbacks)
    assert build.status == "succeeded", build.logs
    assert "Ignoring the bundle's .npmrc" in build.logs
    assert "Ignoring the bundle's package-lock.json" in build.logs
    with storages["sources"].open(build.artifact_path) as stored, \
            tarfile.open(fileobj=stored, mode="r:gz") as artifact:
        names = set(artifact.getnames())
        lockfile = artifact.extractfile("source/package-lock.json").read().decode()
    assert "source/src/jsalgo.js" in names and "source/.npmrc" not in names
    assert "9912" not in lockfile  # the one npm wrote, not the bundle's


@pytest.mark.django_db(transaction=True)
def test_embedded_a_build_started_from_the_page_answers_at_once(algorithm, user, settings):
    """make run (no broker): the build ran within the request that started it, so the page
    opened on a finished build and its live log never streamed. With
    EMBEDDED_BUILDS_IN_BACKGROUND (make run's setting) it runs on a thread of the process."""
    from django.test import Client

    from marketplace.dispatch import background_drained

    settings.CELERY_TASK_ALWAYS_EAGER = True  # embedded, in both passes
    settings.EMBEDDED_BUILDS_IN_BACKGROUND = True
    upload(algorithm, user, tar_gz(demo_files(unique=True)))  # a real pip install: seconds
    page = Client()
    page.force_login(user)
    response = page.post(f"/algorithms/{user.username}/hello/compile/")
    build = Build.objects.get(algorithm=algorithm)
    assert response.status_code == 302
    assert response["Location"] == f"/algorithms/{user.username}/hello/builds/{build.build_id}/"
    assert build.status == "in-progress"  # the answer came before the build's end
    shown = page.get(response["Location"]).content.decode()  # the page that streams the log
    assert 'data-status="in-progress"' in shown and f'data-ws="/ws/builds/{build.build_id}"' in shown
    assert background_drained(timeout=300)
    build.refresh_from_db()
    assert build.status == "succeeded", build.logs
    assert "Successfully installed" in build.logs


def test_a_syntax_error_in_the_entry_module_fails_the_build(algorithm, user,
                                                            django_capture_on_commit_callbacks):
    """It built, and only the first call found it (a LoadingError)."""
    upload(algorithm, user, tar_gz({"src/hello.py": f"# {uuid.uuid4()}\ndef apply(input):\n"
                                                     "    return input +\n"}))
    build = build_now(algorithm, user, django_capture_on_commit_callbacks)
    assert build.status == "failed"
    assert build.error_message == "src/hello.py line 3: invalid syntax."
    assert "Successfully installed" not in build.logs  # found before installing anything
