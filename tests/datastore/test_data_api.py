"""The Data API through the official ``algorithmia`` client: collections, files, listings,
ACLs, scopes, and paths that try to step outside."""
import http.client
import json
from urllib.parse import urlparse

import Algorithmia
import pytest
from Algorithmia.acl import ReadAcl
from Algorithmia.errors import DataApiError

from datastore.models import Collection, DataFile
from datastore.services import data_storage
from marketplace import services as marketplace_services
from marketplace.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, raw_key):
    client = Algorithmia.client(raw_key, api_address=live_server.url)
    yield client
    client.requestSession.close()


def other_client(live_server, **scopes):
    stranger = UserFactory()
    raw = marketplace_services.api_key_create(
        created_by=stranger, name="other",
        scopes=marketplace_services.KeyScopes(algo_patterns=["algo://*"], **scopes)).raw
    return Algorithmia.client(raw, api_address=live_server.url)


def raw_request(live_server, method: str, path: str, key: str, body: bytes = b""):
    """Send a path exactly as written (HTTP libraries would tidy its '..' away)."""
    url = urlparse(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Authorization": key})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_files_round_trip_with_the_official_client(client, user, tmp_path):
    photos = client.dir("data://.my/photos")
    assert not photos.exists()
    photos.create()
    assert photos.exists()
    assert Collection.objects.get().read_acl == "algorithms"  # the default: my algorithms

    text = client.file("data://.my/photos/notes.txt")
    text.put("hello, data")
    assert text.exists() and text.getString() == "hello, data"
    client.file("data://.my/photos/config.json").putJson({"a": [1, 2]})
    assert client.file("data://.my/photos/config.json").getJson() == {"a": [1, 2]}
    blob = bytes(range(256)) * 10
    client.file("data://.my/photos/blob.bin").put(blob)
    assert client.file("data://.my/photos/blob.bin").getBytes() == blob
    local = tmp_path / "local.txt"
    local.write_text("from disk")
    client.file(f"data://{user.username}/photos/disk.txt").putFile(str(local))
    assert client.file("data://.my/photos/disk.txt").getString() == "from disk"

    old_key = DataFile.objects.get(name="notes.txt").storage_key
    text.put("replaced")  # a second PUT replaces, and the old bytes are gone
    assert text.getString() == "replaced"
    assert DataFile.objects.filter(name="notes.txt").count() == 1
    assert not data_storage().exists(old_key)

    names = sorted(f.getName() for f in photos.files())
    assert names == ["blob.bin", "config.json", "disk.txt", "notes.txt"]
    listed = {f.getName(): f for f in photos.files()}
    assert listed["blob.bin"].last_modified is not None  # the client parsed the date
    assert [d.getName() for d in client.dir("data://.my").dirs()] == ["photos"]

    client.file("data://.my/photos/disk.txt").delete()
    assert not client.file("data://.my/photos/disk.txt").exists()
    with pytest.raises(DataApiError):
        photos.delete()  # not empty
    photos.delete(force=True)
    assert not photos.exists() and not DataFile.objects.exists()


def test_listings_span_pages(client, settings, live_server):
    settings.DATA_LIST_PAGE_SIZE = 2
    folder = client.dir("data://.my/many")
    folder.create()
    for index in range(5):
        client.file(f"data://.my/many/f{index}.txt").put(str(index))
    assert [f.getName() for f in folder.files()] == [f"f{i}.txt" for i in range(5)]
    for name in ("c1", "c2", "c3"):
        client.dir(f"data://.my/{name}").create()
    assert sorted(d.getName() for d in client.dir("data://.my").dirs()) == [
        "c1", "c2", "c3", "many"]
    # Another user sees only what is public, across pages, nothing skipped (a page that
    # starts with one it may not see must not lose the next page's first).
    client.dir("data://.my/a-private").create(ReadAcl.private)
    for name in ("a1", "b1", "b2"):
        client.dir(f"data://.my/{name}").create(ReadAcl.public)
    other = other_client(live_server)
    username = Collection.objects.first().owner_name
    assert [d.getName() for d in other.dir(f"data://{username}").dirs()] == ["a1", "b1", "b2"]


def test_permissions_public_private_and_never_write(client, user, live_server):
    client.dir("data://.my/open").create()
    client.file("data://.my/open/a.txt").put("public text")
    client.dir("data://.my/shut").create(ReadAcl.private)
    client.file("data://.my/shut/b.txt").put("secret text")
    client.dir("data://.my/open").update_permissions(ReadAcl.public)
    assert client.dir("data://.my/open").get_permissions().read_acl.pseudonym == "public"
    assert client.dir("data://.my/shut").get_permissions().read_acl.pseudonym == "private"

    other = other_client(live_server)
    assert other.file(f"data://{user.username}/open/a.txt").getString() == "public text"
    assert [d.getName() for d in other.dir(f"data://{user.username}").dirs()] == ["open"]
    for path in (f"data://{user.username}/shut/b.txt", f"data://{user.username}/shut"):
        response = other.requestSession.get(f"{live_server.url}/v1/data/{path[7:]}",
                                            headers={"Authorization": other.apiKey})
        assert response.status_code == 404
        assert response.json()["error"]["error_type"] == "NotFound"
    assert not other.file(f"data://{user.username}/shut/b.txt").exists()
    # The client raises its generic error for these (a 403 and a 404 from the API).
    with pytest.raises(Exception, match="403"):
        other.file(f"data://{user.username}/open/a.txt").put("defaced")
    with pytest.raises(Exception, match="404"):
        other.file(f"data://{user.username}/shut/new.txt").put("sneaked")
    status, _ = raw_request(live_server, "DELETE", f"/v1/data/{user.username}/open/a.txt",
                            other.apiKey)
    assert status == 403
    status, _ = raw_request(live_server, "PATCH", f"/v1/data/{user.username}/shut",
                            other.apiKey, json.dumps({"acl": {"read": ["user://*"]}}).encode())
    assert status == 404
    assert client.file("data://.my/open/a.txt").getString() == "public text"
    assert DataFile.objects.count() == 2
    changes = AuditEvent.objects.filter(action="data.acl_change")
    assert [e.data for e in changes] == [{"before": {"read": ["algo://.my/*"]},
                                          "after": {"read": ["user://*"]}}]


def test_key_data_scopes_are_enforced(client, user, live_server):
    client.dir("data://.my/scoped").create()
    client.file("data://.my/scoped/x.txt").put("x")
    read_only = marketplace_services.api_key_create(
        created_by=user, name="ro", scopes=marketplace_services.KeyScopes(
            algo_patterns=["algo://*"], data_access="read")).raw
    none = marketplace_services.api_key_create(
        created_by=user, name="none", scopes=marketplace_services.KeyScopes(
            algo_patterns=["algo://*"], data_access="none")).raw
    status, body = raw_request(live_server, "GET", "/v1/data/.my/scoped/x.txt", read_only)
    assert (status, body) == (200, b"x")
    status, body = raw_request(live_server, "PUT", "/v1/data/.my/scoped/y.txt", read_only, b"y")
    assert status == 403 and json.loads(body)["error"]["error_type"] == "AuthError"
    status, _ = raw_request(live_server, "GET", "/v1/data/.my/scoped/x.txt", none)
    assert status == 403
    assert not DataFile.objects.filter(name="y.txt").exists()


@pytest.mark.parametrize("path", [
    "/v1/data/.my/a/../../b", "/v1/data/../../etc/passwd", "/v1/data/.my/../x/y",
    "/v1/data/.my/./f", "/v1/data/.my//f", "/v1/data/.my/a%5Cb/c", "/v1/data/.my/a/b/c/d"])
def test_paths_that_step_outside_are_refused_and_touch_nothing(client, live_server, path):
    client.dir("data://.my/a").create()
    status, body = raw_request(live_server, "PUT", path, client.apiKey, b"payload")
    assert status == 400, (path, status, body)
    assert json.loads(body)["error"]["error_type"] == "InputError"
    assert not DataFile.objects.exists()
    assert list(Collection.objects.values_list("name", flat=True)) == ["a"]


def test_size_limit_and_quota_are_clear_errors(client, live_server, settings):
    client.dir("data://.my/big").create()
    settings.DATA_MAX_FILE_BYTES = 1000
    with pytest.raises(Exception, match="413"):
        client.file("data://.my/big/too-big.bin").put(b"x" * 1001)
    status, body = raw_request(live_server, "PUT", "/v1/data/.my/big/too-big.bin",
                               client.apiKey, b"x" * 1001)
    assert status == 413 and "at most 1000 bytes" in json.loads(body)["error"]["message"]
    settings.DATA_MAX_FILE_BYTES = 10_000
    settings.DATA_QUOTA_BYTES = 1500
    client.file("data://.my/big/one.bin").put(b"x" * 1000)
    status, body = raw_request(live_server, "PUT", "/v1/data/.my/big/two.bin", client.apiKey,
                               b"x" * 1000)
    assert status == 413 and "quota" in json.loads(body)["error"]["message"]
    assert list(DataFile.objects.values_list("name", flat=True)) == ["one.bin"]
    assert client.file("data://.my/big/one.bin").getBytes() == b"x" * 1000


def test_hosted_data_on_an_s3_compatible_store(client, settings, s3_server):
    """With S3 configured, the same calls keep the bytes in the bucket (django-storages)."""
    from tests.datastore.conftest import BUCKET

    url, s3 = s3_server
    settings.STORAGES = {**settings.STORAGES, "data": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": url, "region_name": "us-east-1",
                    "access_key": "moto-key", "secret_key": "moto-secret", "location": "data"}}}
    client.dir("data://.my/on-s3").create()
    payload = bytes(range(256)) * 4096  # 1 MiB
    client.file("data://.my/on-s3/blob.bin").put(payload)
    stored = DataFile.objects.get(name="blob.bin")
    obj = s3.get_object(Bucket=BUCKET, Key=f"data/{stored.storage_key}")
    assert obj["Body"].read() == payload
    assert client.file("data://.my/on-s3/blob.bin").getBytes() == payload
    client.file("data://.my/on-s3/blob.bin").delete()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"data/{stored.storage_key}")


def test_limits_hold_for_a_stream_of_unknown_length(user, settings):
    """Without Content-Length the stream is counted as it is stored: past the size limit or
    the quota it is refused and its bytes are deleted."""
    import io

    from datastore import services
    from marketplace.errors import PayloadTooLargeError

    key = marketplace_services.api_key_create(created_by=user, name="k").key
    collection = services.collection_create(parent=services.DataPath(user.username),
                                            name="stream", acl=None, key=key, actor=user)
    settings.DATA_MAX_FILE_BYTES = 1000
    with pytest.raises(PayloadTooLargeError, match="at most 1000 bytes"):
        services.file_put(collection=collection, name="a", stream=io.BytesIO(b"x" * 5000),
                          length=None, actor=user)
    settings.DATA_QUOTA_BYTES = 1500
    services.file_put(collection=collection, name="b", stream=io.BytesIO(b"x" * 900),
                      length=None, actor=user)
    with pytest.raises(services.QuotaExceeded):
        services.file_put(collection=collection, name="c", stream=io.BytesIO(b"x" * 900),
                          length=None, actor=user)
    assert list(DataFile.objects.values_list("name", flat=True)) == ["b"]
    root = services.data_storage().path(str(collection.uuid))
    import os

    assert os.listdir(root) == [os.path.basename(DataFile.objects.get().storage_key)]


@pytest.mark.parametrize("name", ["bad/name", "", "a/b/c", "-x", " "])
def test_a_collection_name_that_is_not_one_name_is_refused(client, live_server, name):
    """Not cut at its slash into another collection, nor "data://owner/None already
    exists" for an empty one: a 400 saying why, and nothing made."""
    status, body = raw_request(live_server, "POST", "/v1/data/.my", client.apiKey,
                               json.dumps({"name": name}).encode())
    assert status == 400, (name, status, body)
    error = json.loads(body)["error"]
    assert error["error_type"] == "InputError"
    assert f"'{name}' is not a valid collection name" in error["message"]
    assert not Collection.objects.exists()


def test_an_organizations_data_namespace_is_404_to_outsiders(client, user, live_server):
    """``/v1/organizations/<name>`` is 404 to non-members; the Data API listed the same
    organization's namespace to them (an empty 200, where an unknown name is 404)."""
    org = marketplace_services.organization_create(actor=user, name="hushorg")
    outsider = other_client(live_server, data_access="read")
    for method in ("GET", "HEAD"):
        status, _ = raw_request(live_server, method, "/v1/data/hushorg", outsider.apiKey)
        assert status == 404, method
        status, _ = raw_request(live_server, method, "/v1/data/nosuchowner", outsider.apiKey)
        assert status == 404, method
        status, _ = raw_request(live_server, method, "/v1/data/hushorg", client.apiKey)
        assert status == 200, method  # a member
    # Once it has a public collection, its namespace lists that (and nothing else) to anyone.
    client.dir("data://hushorg/shared").create(ReadAcl.public)
    client.dir("data://hushorg/inner").create(ReadAcl.private)
    status, body = raw_request(live_server, "GET", "/v1/data/hushorg", outsider.apiKey)
    assert status == 200
    assert [folder["name"] for folder in json.loads(body)["folders"]] == ["shared"]
    assert Collection.objects.filter(owner_org=org).count() == 2
    outsider.requestSession.close()
