"""Large inputs by reference: an algorithm reads the ``data://`` URI it is given, with the key
derived for its call — what its owner shared with their algorithms, and public data; never
its caller's private data."""
import Algorithmia
import pytest

from datastore import services as data_services
from marketplace import services as marketplace_services
from tests.execution.conftest import bundle_files, publish
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _collection(owner, name, acl, files):
    key = marketplace_services.api_key_create(created_by=owner, name="data").key
    collection = data_services.collection_create(
        parent=data_services.DataPath(owner.username), name=name, acl={"read": acl}, key=key,
        actor=owner)
    import io

    for file_name, text in files.items():
        data_services.file_put(collection=collection, name=file_name,
                               stream=io.BytesIO(text.encode()), length=len(text), actor=owner)
    return collection


def test_an_algorithm_reads_what_it_may_and_nothing_else(live_server, builds_run):
    author, caller, stranger = UserFactory(), UserFactory(), UserFactory()
    publish(author, "reader", bundle_files("reader"), pipeline_enabled=True)
    _collection(author, "mine", ["algo://.my/*"], {"a.txt": "for my algorithms"})
    _collection(author, "closed", [], {"c.txt": "only me"})
    _collection(caller, "secret", [], {"s.txt": "the caller's own"})
    _collection(stranger, "open", ["user://*"], {"o.txt": "everyone's"})
    _collection(stranger, "theirs", ["algo://.my/*"], {"t.txt": "their algorithms only"})
    key = marketplace_services.api_key_create(created_by=caller, name="caller").raw
    client = Algorithmia.client(key, api_address=live_server.url)
    reader = client.algo(f"{author.username}/reader")

    def read(uri):
        return reader.pipe({"uri": uri}).result

    assert read(f"data://{author.username}/mine/a.txt") == {"text": "for my algorithms"}
    assert read(f"data://{stranger.username}/open/o.txt") == {"text": "everyone's"}
    for refused in (f"data://{author.username}/closed/c.txt",   # private, even to its algorithms
                    f"data://{caller.username}/secret/s.txt",   # the caller's private data
                    "data://.my/secret/s.txt",                 # the same, by .my
                    f"data://{stranger.username}/theirs/t.txt"):  # someone else's algorithms'
        answer = read(refused)
        assert answer.get("refused", "").endswith(
            "No such collection: " + refused.rsplit("/", 1)[0].replace(
                "data://.my/", f"data://{caller.username}/") + "."), (refused, answer)
    # With its own key the caller still reads its own data, of course.
    assert client.file("data://.my/secret/s.txt").getString() == "the caller's own"
    client.requestSession.close()
