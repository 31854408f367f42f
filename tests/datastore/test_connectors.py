"""s3:// through the Data API, against a real S3-compatible server (moto's server mode)."""
import Algorithmia
import boto3
import pytest
import requests

from datastore.models import Connector
from marketplace.models import AuditEvent
from tests.factories import UserFactory
from marketplace import services as marketplace_services

pytestmark = pytest.mark.django_db(transaction=True)
from tests.datastore.conftest import BUCKET, SECRET
from tests.execution.conftest import bundle_files, publish


def _add(live_server, raw_key, s3_url, **extra):
    return requests.post(f"{live_server.url}/v1/connectors", headers={"Authorization": raw_key},
                         json={"type": "s3", "bucket": BUCKET, "access_key_id": "moto-key",
                               "secret_access_key": SECRET, "endpoint_url": s3_url,
                               "region": "us-east-1", "path_prefix": "inbox/", **extra},
                         timeout=30)


def test_read_through_a_read_only_connector_with_a_path_restriction(live_server, raw_key,
                                                                     s3_server):
    s3_url, s3 = s3_server
    added = _add(live_server, raw_key, s3_url)
    assert added.status_code == 201, added.text
    assert SECRET not in added.text and "moto-key" not in added.text
    listed = requests.get(f"{live_server.url}/v1/connectors",
                          headers={"Authorization": raw_key}, timeout=30)
    assert SECRET not in listed.text and listed.json()["results"][0]["bucket"] == BUCKET
    stored = Connector.objects.get()
    assert SECRET.encode() not in bytes(stored.encrypted_secret_access_key)

    client = Algorithmia.client(raw_key, api_address=live_server.url)
    assert client.file(f"s3://{BUCKET}/inbox/a.txt").getString() == "from the outside store"
    assert client.file(f"s3://{BUCKET}/inbox/a.txt").exists()
    assert not client.file(f"s3://{BUCKET}/inbox/missing.txt").exists()
    folder = client.dir(f"s3://{BUCKET}/inbox/")
    assert [f.getName() for f in folder.files()] == ["a.txt"]
    assert [d.getName() for d in folder.dirs()] == ["sub"]
    outside = requests.get(f"{live_server.url}/v1/data/s3://{BUCKET}/elsewhere/c.txt",
                           headers={"Authorization": raw_key}, timeout=30)
    assert outside.status_code == 403 and "under 'inbox/'" in outside.json()["error"]["message"]
    write = requests.put(f"{live_server.url}/v1/data/s3://{BUCKET}/inbox/new.txt",
                         data=b"x", headers={"Authorization": raw_key}, timeout=30)
    assert write.status_code == 403 and "read-only" in write.json()["error"]["message"]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="inbox/new.txt")
    assert AuditEvent.objects.filter(action="data.connector_create").count() == 1


def test_reads_ask_the_store_once_each_on_one_kept_client(live_server, raw_key, s3_server,
                                                        monkeypatch):
    """A file is read with one request to the store (no HEAD first); a path that is no
    object is listed (a folder named without its slash) or not found; every read through
    the connector uses the client its first read made."""
    from datastore import connectors

    s3_url, _ = s3_server
    _add(live_server, raw_key, s3_url)
    made, asked = [], []
    real_client = connectors.boto3.client

    def counted_client(*args, **kwargs):
        client = real_client(*args, **kwargs)
        client.meta.events.register("before-call.s3",
                                    lambda model, **_: asked.append(model.name))
        made.append(client)
        return client

    monkeypatch.setattr(connectors.boto3, "client", counted_client)
    monkeypatch.setattr(connectors, "_clients", type(connectors._clients)())

    def get(path):
        return requests.get(f"{live_server.url}/v1/data/s3://{BUCKET}/{path}",
                            headers={"Authorization": raw_key}, timeout=30)

    first, again = get("inbox/a.txt"), get("inbox/a.txt")
    folder, missing = get("inbox/sub"), get("inbox/missing.txt")
    assert (first.status_code, first.content) == (200, b"from the outside store")
    assert (again.status_code, again.content) == (200, b"from the outside store")
    assert folder.status_code == 200
    assert [f["filename"] for f in folder.json()["files"]] == ["b.txt"]
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": f"No such object: s3://{BUCKET}/inbox/missing.txt.",
                                       "error_type": "NotFound"}
    assert asked == ["GetObject", "GetObject", "GetObject", "ListObjectsV2", "GetObject",
                     "ListObjectsV2"]
    assert len(made) == 1


def test_write_and_delete_through_a_writable_connector(live_server, raw_key, s3_server):
    s3_url, s3 = s3_server
    _add(live_server, raw_key, s3_url, writable=True)
    client = Algorithmia.client(raw_key, api_address=live_server.url)
    client.file(f"s3://{BUCKET}/inbox/written.txt").put("written through algostore")
    body = s3.get_object(Bucket=BUCKET, Key="inbox/written.txt")["Body"].read()
    assert body == b"written through algostore"
    client.file(f"s3://{BUCKET}/inbox/written.txt").delete()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="inbox/written.txt")


def test_others_and_bad_paths_reach_nothing(live_server, raw_key, s3_server):
    s3_url, _ = s3_server
    _add(live_server, raw_key, s3_url)
    stranger = marketplace_services.api_key_create(created_by=UserFactory(), name="s").raw
    response = requests.get(f"{live_server.url}/v1/data/s3://{BUCKET}/inbox/a.txt",
                            headers={"Authorization": stranger}, timeout=30)
    assert response.status_code == 404  # their own connectors only; this one is not theirs
    connector_id = Connector.objects.get().uuid
    gone = requests.delete(f"{live_server.url}/v1/connectors/{connector_id}",
                           headers={"Authorization": stranger}, timeout=30)
    assert gone.status_code == 404 and Connector.objects.exists()
    from tests.datastore.test_data_api import raw_request

    status, body = raw_request(live_server, "GET",
                               f"/v1/data/s3://{BUCKET}/inbox/../elsewhere/c.txt", raw_key)
    assert status == 400 and b"'..'" in body  # refused as written, before any connector
    deleted = requests.delete(f"{live_server.url}/v1/connectors/{connector_id}",
                              headers={"Authorization": raw_key}, timeout=30)
    assert deleted.status_code == 200 and not Connector.objects.exists()
    assert AuditEvent.objects.filter(action="data.connector_delete").count() == 1


def test_an_algorithm_reads_exactly_the_s3_objects_its_input_names(live_server, raw_key, user,
                                                                    s3_server, builds_run):
    s3_url, _ = s3_server
    _add(live_server, raw_key, s3_url)
    author = UserFactory()
    publish(author, "reader", bundle_files("reader"), pipeline_enabled=True)
    client = Algorithmia.client(raw_key, api_address=live_server.url)
    reader = client.algo(f"{author.username}/reader")
    named = f"s3://{BUCKET}/inbox/a.txt"
    assert reader.pipe({"uri": named}).result == {"text": "from the outside store"}
    # Another object of the same bucket, not named whole in the input: out of reach.
    built = reader.pipe({"uri": f"s3://{BUCKET}/inbox/sub/", "suffix": "b.txt"}).result
    assert built["refused"].endswith(f"No connector for s3://{BUCKET}/inbox/sub/b.txt.")
    # Named whole, it is readable; and a connector is never visible as such to the code.
    assert reader.pipe({"uri": f"s3://{BUCKET}/inbox/sub/b.txt"}).result == {"text": "deeper"}
    client.requestSession.close()


@pytest.mark.parametrize("endpoint", ["http://169.254.169.254", "http://10.0.0.5:9000",
                                      "http://localhost:9000", "ftp://example.com",
                                      "http://user@example.com", "http://example.com/x?y=1"])
def test_a_connector_cannot_point_at_this_machine_or_private_networks(live_server, raw_key,
                                                                      endpoint):
    response = requests.post(f"{live_server.url}/v1/connectors", headers={"Authorization": raw_key},
                             json={"bucket": BUCKET, "access_key_id": "a",
                                   "secret_access_key": "b", "endpoint_url": endpoint},
                             timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["error_type"] == "InputError"
    assert not Connector.objects.exists()


def test_connector_input_and_scopes(live_server, raw_key, user, s3_server):
    s3_url, _ = s3_server
    base = f"{live_server.url}/v1/connectors"
    bad = requests.post(base, headers={"Authorization": raw_key},
                        json={"bucket": BUCKET, "access_key_id": "a", "secret_access_key": "b",
                              "endpoint_url": s3_url, "writable": "false"}, timeout=30)
    assert bad.status_code == 400 and "true or false" in bad.text
    added = _add(live_server, raw_key, s3_url, path_prefix="inbox")
    assert added.json()["path_prefix"] == "inbox/"  # a folder: "inbox-private/" is not under it
    calls_only = marketplace_services.api_key_create(
        created_by=user, name="calls", scopes=marketplace_services.KeyScopes(
            algo_patterns=["algo://*"], can_manage=False)).raw
    listed = requests.get(base, headers={"Authorization": calls_only}, timeout=30)
    assert listed.status_code == 403
