"""The data browser, without a browser: every action and its refusals."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datastore.models import Collection, DataFile
from datastore.services import data_storage
from marketplace.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # blobs go when their rows commit


def test_create_upload_download_acl_delete(client, user):
    client.force_login(user)
    # An ACL that is not one of the choices is refused, not replaced by the default.
    response = client.post(reverse("data"), {"owner": user.username, "name": "pics",
                                             "acl": "everyone-please"}, follow=True)
    assert response.status_code == 200
    assert "Choose who may read the collection." in response.content.decode()
    assert not Collection.objects.exists()
    response = client.post(reverse("data"), {"owner": user.username, "name": "pics",
                                             "acl": "private"})
    assert response.status_code == 302
    collection = Collection.objects.get(name="pics")
    assert collection.read_acl == "private"
    upload = SimpleUploadedFile("cat.txt", b"meow", content_type="text/plain")
    response = client.post(reverse("data-upload", args=[user.username, "pics"]),
                           {"file": upload}, HTTP_ACCEPT="application/json")
    assert response.json() == {"message": "Uploaded cat.txt (4 bytes)."}
    download = client.get(reverse("data-download", args=[user.username, "pics", "cat.txt"]))
    assert b"".join(download.streaming_content) == b"meow"
    assert 'data-file="cat.txt"' in client.get(
        reverse("data-collection", args=[user.username, "pics"])).content.decode()
    client.post(reverse("data-acl", args=[user.username, "pics"]), {"acl": "public"})
    assert Collection.objects.get(name="pics").read_acl == "public"
    assert AuditEvent.objects.filter(action="data.acl_change").count() == 1
    stored = DataFile.objects.get().storage_key
    assert data_storage().exists(stored)
    client.post(reverse("data-file-delete", args=[user.username, "pics", "cat.txt"]))
    assert not DataFile.objects.exists() and not data_storage().exists(stored)
    client.post(reverse("data-collection-delete", args=[user.username, "pics"]))
    assert not Collection.objects.exists()


def test_others_get_404_for_private_and_cannot_change_public(client, user):
    client.force_login(user)
    client.post(reverse("data"), {"owner": user.username, "name": "mine", "acl": "private"})
    client.post(reverse("data"), {"owner": user.username, "name": "shared", "acl": "public"})
    client.post(reverse("data-upload", args=[user.username, "shared"]),
                {"file": SimpleUploadedFile("a.txt", b"a")})
    client.force_login(UserFactory())
    assert client.get(reverse("data-collection", args=[user.username, "mine"])).status_code == 404
    page = client.get(reverse("data-collection", args=[user.username, "shared"]))
    assert page.status_code == 200 and 'id="upload-form"' not in page.content.decode()
    refused = client.post(reverse("data-upload", args=[user.username, "shared"]),
                          {"file": SimpleUploadedFile("b.txt", b"b")})
    assert refused.status_code == 404
    client.post(reverse("data-acl", args=[user.username, "shared"]), {"acl": "private"})
    assert Collection.objects.get(name="shared").read_acl == "public"
    assert list(DataFile.objects.values_list("name", flat=True)) == ["a.txt"]


def test_algorithms_spaces_are_not_reachable_through_the_pages(client, user):
    Collection.objects.create(owner_user=user, owner_name=user.username,
                              name="~session~0123", read_acl="private")
    client.force_login(user)
    assert client.get(reverse("data-collection", args=[user.username, "~session~0123"])
                      ).status_code == 404
    assert "~session~" not in client.get(reverse("data")).content.decode()
