"""The management API through the official `algorithmia` client, end to end.

Pass 1 builds eagerly in-process; pass 2 (CI) runs on PostgreSQL with a real Celery worker
consuming the builds queue over Redis.
"""
import time

import Algorithmia
import pytest

from catalog.models import Algorithm
from django.conf import settings

from tests.catalog.conftest import demo_files, tar_gz

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, raw_key, builds_run):
    client = Algorithmia.client(raw_key, api_address=live_server.url)
    yield client
    client.requestSession.close()


def demo_bundle() -> bytes:
    return tar_gz(demo_files(unique=True))  # new content: a real build, not a reused one


def wait_for_build(algo, build_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        build = algo.get_build(build_id)
        if build["status"] != "in-progress":
            return build
        time.sleep(0.3)
    raise AssertionError(f"build {build_id} still in progress after {timeout} s")


def test_create_upload_compile_publish_and_list_with_the_official_client(client, user):
    algo = client.algo(f"{user.username}/hello")
    assert algo.exists() is False
    created = algo.create(
        details={"label": "Hello", "tagline": "Greets you", "summary": ""},
        settings={"language": "python3", "source_visibility": "open", "license": "apl",
                  "royalty_microcredits": 2_000_000, "network_access": "isolated",
                  "pipeline_enabled": False})
    assert created["name"] == "hello" and created["id"]
    assert algo.exists() is True

    upload = client.requestSession.put(
        f"{client.apiAddress}/v1/algorithms/{user.username}/hello/source", data=demo_bundle(),
        headers={"Authorization": client.apiKey, "Content-Type": "application/gzip"})
    assert upload.status_code == 201, upload.text

    compiled = algo.compile()
    assert compiled["version_info"]["semantic_version"] is None
    build = wait_for_build(algo, compiled["build"]["build_id"])
    assert build["status"] == "succeeded", algo.get_build_logs(build["build_id"])["logs"]
    assert "Successfully installed" in algo.get_build_logs(build["build_id"])["logs"]
    assert [b["build_id"] for b in algo.get_builds()["results"]] == [build["build_id"]]

    published = algo.publish(version_info={"version_type": "minor", "release_notes": "First!",
                                           "sample_input": '"Ada"',
                                           "sample_output": '"Hello, Ada!"'})
    assert published["version_info"]["semantic_version"] == "0.1.0"
    assert published["settings"]["royalty_microcredits"] == 2_000_000

    versions = algo.versions()
    assert [v["version_info"]["semantic_version"] for v in versions["results"]] == ["0.1.0"]
    assert versions["marker"] is None
    info = algo.info(build["commit_sha"][:12])
    assert info["version_info"]["semantic_version"] == "0.1.0"
    assert client.getJsonHelper(f"/v1/algorithms/{user.username}/hello/versions/0.1")[
        "version_info"]["release_notes"] == "First!"

    again = client.requestSession.post(
        f"{client.apiAddress}/v1/algorithms/{user.username}/hello/versions",
        json={"version_info": {"version_type": "minor"}}, headers={"Authorization": client.apiKey})
    assert again.status_code == 400 and "already published" in again.json()["error"]["message"]
    for body in ([1], "x", 5):  # not an object: a 400 saying what to send (a 500 before)
        reply = client.requestSession.post(
            f"{client.apiAddress}/v1/algorithms/{user.username}/hello/versions", json=body,
            headers={"Authorization": client.apiKey})
        assert reply.status_code == 400, (body, reply.text)
        assert "Send a JSON object" in reply.json()["error"]["message"]


def test_management_needs_the_manage_scope_and_hides_private_algorithms(live_server, user,
                                                                        make_key):
    from marketplace.services import KeyScopes

    narrow = Algorithmia.client(make_key(user, scopes=KeyScopes(["algo://*"], "read", False)),
                                api_address=live_server.url)
    response = narrow.requestSession.post(
        f"{live_server.url}/v1/algorithms/{user.username}", json={"name": "x"},
        headers={"Authorization": narrow.apiKey})
    assert response.status_code == 403
    assert not Algorithm.objects.exists()

    from catalog import services
    from tests.catalog.conftest import fake_successful_build
    from tests.factories import UserFactory

    other = UserFactory()
    services.algorithm_create(actor=other, owner=other.username, name="secret_algo")
    for path in (f"/v1/algorithms/{other.username}/secret_algo",
                 f"/v1/algorithms/{other.username}/secret_algo/versions",
                 f"/v1/algorithms/{other.username}/secret_algo/builds"):
        reply = narrow.requestSession.get(live_server.url + path,
                                          headers={"Authorization": narrow.apiKey})
        assert reply.status_code == 404, path
        assert reply.json()["error"]["error_type"] == "NotFound"
    # Nor its own user's: a key without the manage scope reads what everyone can (it read
    # and listed them, with their builds' logs).
    own = services.algorithm_create(actor=user, owner=user.username, name="own_secret")
    build = fake_successful_build(own, user)
    for path in (f"/v1/algorithms/{user.username}/own_secret",
                 f"/v1/algorithms/{user.username}/own_secret/versions",
                 f"/v1/algorithms/{user.username}/own_secret/builds",
                 f"/v1/algorithms/{user.username}/own_secret/builds/{build.build_id}/logs",
                 f"/v1/algorithms/{user.username}/own_secret/versions/{build.content_hash}"):
        reply = narrow.requestSession.get(live_server.url + path,
                                          headers={"Authorization": narrow.apiKey})
        assert reply.status_code == 404, path
    listed = narrow.requestSession.get(f"{live_server.url}/v1/algorithms/{user.username}",
                                       headers={"Authorization": narrow.apiKey})
    assert listed.status_code == 200 and listed.json()["results"] == []
    full = Algorithmia.client(make_key(user), api_address=live_server.url)
    assert [a["name"] for a in full.getJsonHelper(f"/v1/algorithms/{user.username}")[
        "results"]] == ["own_secret"]
    assert full.getJsonHelper(f"/v1/algorithms/{user.username}/own_secret/builds/"
                              f"{build.build_id}/logs")["logs"] == build.logs
    full.requestSession.close()
    narrow.requestSession.close()


def test_paging_of_versions(client, user):
    from catalog import services
    from django.contrib.auth import get_user_model
    from tests.catalog.conftest import fake_successful_build

    owner = get_user_model().objects.get(pk=user.pk)
    algorithm = services.algorithm_create(actor=owner, owner=owner.username, name="paged")
    for i in range(3):
        fake_successful_build(algorithm, owner, content=f"p{i}")
        services.version_publish(algorithm=algorithm, actor=owner, version_type="revision")
    first = client.getJsonHelper(f"/v1/algorithms/{owner.username}/paged/versions", limit=2)
    assert [v["version_info"]["semantic_version"] for v in first["results"]] == ["0.0.3", "0.0.2"]
    assert first["marker"] == "2" and first["next_link"].endswith("marker=2")
    second = client.getJsonHelper(f"/v1/algorithms/{owner.username}/paged/versions", limit=2,
                                  marker=first["marker"])
    assert [v["version_info"]["semantic_version"] for v in second["results"]] == ["0.0.1"]
    assert second["marker"] is None
    everything = client.getJsonHelper(f"/v1/algorithms/{owner.username}/paged/versions",
                                      limit=500)  # more than 100 means 100
    assert len(everything["results"]) == 3
    algo = client.algo(f"{owner.username}/paged")
    assert len(algo.versions(published=True, callable=True)["results"]) == 3
    assert algo.versions(published="false")["results"] == []  # every build was published
    draft = fake_successful_build(algorithm, owner, content="p3")
    [unpublished] = algo.versions(published="false")["results"]
    assert unpublished["version_info"]["semantic_version"] is None
    assert unpublished["version_info"]["git_hash"] == draft.content_hash
    assert algo.versions(published="false", callable="true")["results"] == []
    assert len(algo.versions()["results"]) == 3  # published versions, as before
    public = client.requestSession.get(  # nobody else learns of unpublished builds
        f"{client.apiAddress}/v1/algorithms/{owner.username}/paged/versions",
        params={"published": "false"})
    assert public.status_code == 200 and public.json()["results"] == []
    for bad in ({"limit": -1}, {"limit": 0}, {"marker": -2}, {"limit": "abc"},
                {"published": "maybe"}, {"callable": "yes"}):
        reply = client.requestSession.get(
            f"{client.apiAddress}/v1/algorithms/{owner.username}/paged/versions", params=bad,
            headers={"Authorization": client.apiKey})
        assert reply.status_code == 400, bad
        assert reply.json()["error"]["error_type"] == "InputError"


def test_the_generated_management_client_works_where_it_can(client, user):
    """algorithmia-api-client's DefaultApi: create, get, compile, build, logs, publish, hash,
    delete. (Its list calls cannot work against any server: the generated models name
    OneOfBuild and OneOfVersionResponse, classes the package does not ship.)"""
    from algorithmia_api_client import (CreateRequest, Details, SettingsMandatory,
                                        SettingsPublish, VersionInfoPublish, VersionRequest)

    api = client.manageApi
    created = api.create_algorithm(user.username, CreateRequest(
        name="gen", details=Details(label="Gen"), settings=SettingsMandatory(
            language="python3", source_visibility="closed", license="apl",
            royalty_microcredits=0, network_access="isolated", pipeline_enabled=False)))
    assert created.name == "gen"
    upload = client.requestSession.put(
        f"{client.apiAddress}/v1/algorithms/{user.username}/gen/source",
        data=tar_gz({"src/gen.py": "# generated\n", "id.txt": str(time.time_ns())}),
        headers={"Authorization": client.apiKey, "Content-Type": "application/gzip"})
    assert upload.status_code == 201
    assert api.get_algorithm(user.username, "gen").details.label == "Gen"
    build = api.compile_algorithm(user.username, "gen").build
    deadline = time.monotonic() + 120
    while build.status == "in-progress" and time.monotonic() < deadline:
        time.sleep(0.3)
        build = api.get_algorithm_build_by_id(user.username, "gen", build.build_id)
    assert build.status == "succeeded"
    logs = api.get_algorithm_build_logs(user.username, "gen", build.build_id).logs
    assert "No requirements to install." in logs
    assert str(settings.BASE_DIR) not in logs and str(settings.BUILD_ROOT) not in logs
    published = api.publish_algorithm(user.username, "gen", VersionRequest(
        settings=SettingsPublish(algorithm_callability="private"),
        version_info=VersionInfoPublish(version_type="minor", release_notes="gen")))
    assert published.version_info.semantic_version == "0.1.0"
    by_hash = api.get_algorithm_hash_version(user.username, "gen", build.commit_sha)
    assert by_hash.build.version_info.semantic_version == "0.1.0"
    api.delete_algorithm(user.username, "gen")  # private only: deletable
    assert not Algorithm.objects.filter(name="gen").exists()


def test_an_organizations_key_sees_its_organization_not_its_creators_private_algorithms(
        live_server, user):
    """An organization's key speaks for its creator within the organization only: the
    creator's own private algorithms are 404 to it (they were listed and readable, and a
    build hash of one got as far as billing), as to any outsider."""
    import requests

    from catalog import services
    from marketplace import services as marketplace_services
    from tests.catalog.conftest import fake_successful_build

    org = marketplace_services.organization_create(actor=user, name="acme_keys")
    mine = services.algorithm_create(actor=user, owner=user.username, name="mine")
    build = fake_successful_build(mine, user)
    ours = services.algorithm_create(actor=user, owner=org.name, name="ours")
    personal = marketplace_services.api_key_create(created_by=user, name="me").raw
    org_key = marketplace_services.api_key_create(created_by=user, name="acme",
                                                  organization=org).raw

    def get(path: str, key: str) -> requests.Response:
        return requests.get(f"{live_server.url}{path}", headers={"Authorization": key},
                            timeout=30)

    private = [f"/v1/algorithms/{user.username}/mine",
               f"/v1/algorithms/{user.username}/mine/builds",
               f"/v1/algorithms/{user.username}/mine/builds/{build.build_id}",
               f"/v1/algorithms/{user.username}/mine/builds/{build.build_id}/logs",
               f"/v1/algorithms/{user.username}/mine/versions/{build.content_hash[:12]}"]
    for path in private:
        assert get(path, personal).status_code == 200, path
        reply = get(path, org_key)
        assert reply.status_code == 404, (path, reply.text)
        assert reply.json()["error"]["error_type"] == "NotFound"
    listed = get(f"/v1/algorithms/{user.username}", org_key).json()["results"]
    assert [a["name"] for a in listed] == []
    assert [a["name"] for a in get(f"/v1/algorithms/{user.username}", personal).json()[
        "results"]] == ["mine"]
    called = requests.post(f"{live_server.url}/v1/algo/{user.username}/mine/"
                           f"{build.content_hash[:12]}", json="x",
                           headers={"Authorization": org_key}, timeout=30)
    assert called.status_code == 404, called.text
    # Its own organization's private algorithm it does see.
    assert get(f"/v1/algorithms/{org.name}/ours", org_key).status_code == 200
    assert ours.name == "ours"
