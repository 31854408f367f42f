"""The catalog's pages: sanitized docs, prices, visibility, and the publish flow without JS."""
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog import services
from catalog.models import AlgorithmVersion, Build
from tests.catalog.conftest import fake_successful_build, tar_gz
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HOSTILE_DOCS = """# Docs
<script>alert('xss')</script>
<img src="x" onerror="alert(1)">
[click](javascript:alert(2))
<a href="https://example.com" onclick="steal()">ok link</a>
"""


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def public_algorithm(algorithm, user):
    services.algorithm_update(algorithm=algorithm, actor=user, summary=HOSTILE_DOCS,
                              royalty_microcredits=2_500_000)
    fake_successful_build(algorithm, user)
    services.version_publish(algorithm=algorithm, actor=user, version_type="minor",
                             release_notes="Initial release", sample_input='"Ada"')
    return algorithm


def test_docs_are_rendered_and_sanitized(public_algorithm, user):
    html = Client().get(f"/algorithms/{user.username}/hello/").content.decode()
    docs = html.split('data-testid="docs">')[1].split("</article>")[0]
    assert "<h1" in docs and "Docs" in docs
    assert "<script" not in docs and "onerror" not in docs and "onclick" not in docs
    assert "javascript:" not in docs
    assert 'href="https://example.com"' in docs


def test_the_page_shows_endpoint_price_versions_and_snippets(public_algorithm, user):
    html = Client().get(f"/algorithms/{user.username}/hello/").content.decode()
    assert f"/v1/algo/{user.username}/hello/0.1.0" in html
    assert "2.5 credits" in html and "$0.00025" in html
    assert "Initial release" in html
    assert "Algorithmia.client(" in html and "algo run" in html and "curl -X POST" in html


def test_an_unpublished_or_private_algorithm_page_is_404_to_others(algorithm, user):
    response = Client().get(f"/algorithms/{user.username}/hello/")
    assert response.status_code == 404
    page = response.content.decode()  # the store's own page, not Django's technical one
    assert 'data-testid="not-found"' in page and "URLconf" not in page
    assert 'href="/browse/"' in page or "Browse the algorithms" in page
    other = Client()
    other.force_login(UserFactory())
    assert other.get(f"/algorithms/{user.username}/hello/manage/").status_code == 404


def test_manage_page_is_404_to_others_even_when_public(public_algorithm, user):
    mine = Client()
    mine.force_login(user)
    page = mine.get(f"/algorithms/{user.username}/hello/manage/").content.decode()
    # Help texts are text: "<name>" was read as a tag by the browser and vanished.
    assert ".tar.gz or .zip with src/&lt;name&gt;.py (or .js)" in page
    other = Client()
    other.force_login(UserFactory())
    assert other.get(f"/algorithms/{user.username}/hello/").status_code == 200
    assert other.get(f"/algorithms/{user.username}/hello/manage/").status_code == 404
    assert other.post(f"/algorithms/{user.username}/hello/compile/").status_code == 404


def test_browse_lists_published_algorithms(public_algorithm, user):
    response = Client().get("/browse/?q=hello")
    assert response.status_code == 200
    assert f'href="/algorithms/{user.username}/hello/"' in response.content.decode()


def test_create_upload_and_publish_through_the_pages(browser, user, settings,
                                                     django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the page flow, not the worker, is under test
    response = browser.post("/publish/", {"owner": user.username, "name": "pager",
                                          "label": "Pager", "tagline": "", "royalty": "0.5",
                                          "language": "python3-1"})
    assert response.status_code == 302
    assert response["Location"] == f"/algorithms/{user.username}/pager/manage/"
    bundle = SimpleUploadedFile("pager.tar.gz", tar_gz({"src/pager.py": "# pager\n", "id.txt": uuid.uuid4().hex}),
                                content_type="application/gzip")
    upload = browser.post(f"/algorithms/{user.username}/pager/source/", {"bundle": bundle},
                          HTTP_ACCEPT="application/json")
    assert upload.status_code == 200 and "Uploaded 2 files" in upload.json()["message"]
    with django_capture_on_commit_callbacks(execute=True):
        built = browser.post(f"/algorithms/{user.username}/pager/compile/")
    build = Build.objects.get(algorithm__name="pager")
    assert built["Location"] == f"/algorithms/{user.username}/pager/builds/{build.build_id}/"
    assert build.status == "succeeded", build.logs
    page = browser.get(built["Location"]).content.decode()
    assert "No requirements to install." in page
    published = browser.post(f"/algorithms/{user.username}/pager/publish/", {
        "version_type": "minor", "callability": "public", "release_notes": "hi",
        "sample_input": "", "sample_output": ""})
    assert published.status_code == 302
    version = AlgorithmVersion.objects.get(algorithm__name="pager")
    assert (version.semantic_version, version.royalty_microcredits) == ("0.1.0", 500_000)


def test_a_hostile_upload_through_the_page_reports_the_reason(browser, algorithm, user):
    bundle = SimpleUploadedFile("evil.zip", b"PK\x03\x04 not really", content_type="application/zip")
    response = browser.post(f"/algorithms/{user.username}/hello/source/", {"bundle": bundle},
                            HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert "not a readable .zip" in response.json()["error"]["message"]


def test_the_dashboard_lists_the_authors_algorithms(browser, public_algorithm, user):
    html = browser.get("/dashboard/").content.decode()
    assert f"{user.username}/hello" in html and "0.1.0 (public)" in html


def test_an_algorithm_is_deleted_from_its_manage_page_once_its_name_is_typed(
        algorithm, public_algorithm, user):
    """Deleting was API-only. An algorithm with a public version still cannot be deleted."""
    from catalog import services
    from catalog.models import Algorithm
    from marketplace.models import AuditEvent

    owner = Client()
    owner.force_login(user)
    page = owner.get(f"/algorithms/{user.username}/hello/manage/").content.decode()
    assert 'data-testid="delete-form"' not in page and "callers depend on it" in page
    refused = owner.post(f"/algorithms/{user.username}/hello/delete/", {"confirm": "hello"},
                         follow=True)
    assert "cannot be deleted" in refused.content.decode()
    draft = services.algorithm_create(actor=user, owner=user.username, name="draft")
    assert 'data-testid="delete-form"' in owner.get(
        f"/algorithms/{user.username}/draft/manage/").content.decode()
    other = Client()
    other.force_login(UserFactory())
    assert other.post(f"/algorithms/{user.username}/draft/delete/",
                      {"confirm": "draft"}).status_code == 404
    mistyped = owner.post(f"/algorithms/{user.username}/draft/delete/", {"confirm": "draf"},
                          follow=True)
    assert "Type draft to confirm the deletion." in mistyped.content.decode()
    assert Algorithm.objects.filter(pk=draft.pk).exists()
    deleted = owner.post(f"/algorithms/{user.username}/draft/delete/", {"confirm": "draft"})
    assert deleted.status_code == 302 and deleted["Location"] == "/publish/"
    assert not Algorithm.objects.filter(pk=draft.pk).exists()
    assert AuditEvent.objects.filter(action="algorithm.delete").count() == 1
    assert Algorithm.objects.filter(name="hello").exists()
