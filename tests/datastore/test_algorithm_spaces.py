"""A running algorithm's own data: .algo/perm lasts, .algo/temp expires after a day,
.session lives as long as the call tree; nobody else reaches them."""
from datetime import timedelta

import Algorithmia
import pytest
import requests
from django.utils import timezone

from datastore import services as data_services
from datastore.models import Collection, DataFile
from marketplace import services as marketplace_services
from tests.conftest import wait_closed
from tests.execution.conftest import bundle_files, publish
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_spaces_of_a_running_algorithm(live_server, builds_run):
    author, caller = UserFactory(), UserFactory()
    publish(author, "spaces", bundle_files("spaces"), pipeline_enabled=True)
    key = marketplace_services.api_key_create(created_by=caller, name="caller").raw
    client = Algorithmia.client(key, api_address=live_server.url)
    algo = client.algo(f"{author.username}/spaces")

    def run(*steps):
        return algo.pipe({"steps": list(steps)}).result

    assert run({"op": "write", "uri": "data://.algo/perm/p.txt", "text": "kept"},
               {"op": "write", "uri": "data://.algo/temp/t.txt", "text": "for a day"},
               {"op": "write", "uri": "data://.session/s.txt", "text": "this tree"},
               {"op": "read", "uri": "data://.session/s.txt"}) == [
        "written", "written", "written", "this tree"]
    # The next call: perm and temp are still there; the first call's session is gone.
    second = run({"op": "read", "uri": "data://.algo/perm/p.txt"},
                 {"op": "read", "uri": "data://.algo/temp/t.txt"},
                 {"op": "read", "uri": "data://.session/s.txt"})
    assert second[:2] == ["kept", "for a day"]
    assert second[2].endswith("Nothing in data://.session/s.txt yet.")  # a new tree
    wait_closed()  # (a tree's session goes with its root's close, which may trail its answer)
    assert not Collection.objects.filter(name__startswith="~session~").exists()
    spaces = Collection.objects.filter(name__startswith="~algo~")
    assert {c.owner_name for c in spaces} == {author.username}
    assert all(c.read_acl == "private" for c in spaces)

    # Nobody reaches them from outside a running call, nor sees them in listings.
    for path in (".algo/perm/p.txt", ".session/s.txt"):
        response = requests.get(f"{live_server.url}/v1/data/{path}",
                                headers={"Authorization": key}, timeout=30)
        assert response.status_code == 404
    author_key = marketplace_services.api_key_create(created_by=author, name="a").raw
    listing = requests.get(f"{live_server.url}/v1/data/.my", headers={"Authorization": author_key},
                           timeout=30).json()
    assert listing["folders"] == []

    # A day later, temp files are gone and perm files are not.
    DataFile.objects.update(updated_at=timezone.now() - timedelta(days=2))
    assert data_services.temp_expire(older_than=timezone.now() - timedelta(days=1)) == 1
    assert list(DataFile.objects.values_list("name", flat=True)) == ["p.txt"]
    client.requestSession.close()
