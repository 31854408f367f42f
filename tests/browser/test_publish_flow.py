"""In a real browser: publish an algorithm through the pages, then find it by search."""
import tarfile
import time

import pytest

from catalog.models import AlgorithmVersion
from tests.browser.conftest import log_in
from tests.catalog.conftest import DEMO
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_publish_through_the_pages_and_find_it_by_search(page, live_server, builds_run, tmp_path):
    base = live_server.url
    author = UserFactory(username="grace")
    log_in(page, base, author, PASSWORD)

    page.goto(f"{base}/publish/")
    page.fill("#id_name", "greeter")
    page.fill("#id_label", "Greeter")
    page.fill("#id_tagline", "Polite salutations for everyone")
    page.fill("#id_royalty", "2")
    page.get_by_role("button", name="Create algorithm").click()
    page.wait_for_url(f"{base}/algorithms/grace/greeter/manage/")

    bundle = tmp_path / "greeter.tar.gz"
    with tarfile.open(bundle, "w:gz") as archive:
        archive.add(DEMO / "requirements.txt", arcname="requirements.txt")
        archive.add(DEMO / "README.md", arcname="README.md")
        archive.add(DEMO / "src" / "hello.py", arcname="src/greeter.py")
        unique = tmp_path / "build-id.txt"  # new content each run: a real build, live log
        unique.write_text(tmp_path.name + str(time.time_ns()))
        archive.add(unique, arcname="build-id.txt")
    page.set_input_files("#id_bundle", str(bundle))
    with page.expect_response(lambda r: r.url.endswith("/source/")) as uploaded:
        page.get_by_role("button", name="Upload bundle").click()
    assert uploaded.value.status == 200  # sent by the page's script (XHR with progress)
    assert uploaded.value.request.headers["accept"] == "application/json"
    page.wait_for_selector("text=Current source:")

    page.get_by_test_id("build-button").click()
    page.wait_for_url(f"{base}/algorithms/grace/greeter/builds/*/")
    page.wait_for_selector("[data-testid=build-status]:has-text('succeeded')", timeout=180_000)
    assert "Successfully installed" in page.get_by_test_id("build-log").inner_text()
    page.get_by_test_id("back-to-publish").click()

    page.select_option("#id_version_type", "minor")
    page.fill("#id_release_notes", "Hello, world")
    page.fill("#id_sample_input", '"Ada"')
    page.get_by_role("button", name="Publish version").click()
    page.wait_for_url(f"{base}/algorithms/grace/greeter/")
    assert "0.1.0" in page.get_by_test_id("versions").inner_text()
    assert "2 credits" in page.get_by_test_id("price").inner_text()
    assert AlgorithmVersion.objects.get(algorithm__name="greeter").semantic_version == "0.1.0"

    # Anyone finds it by search, signed in or not.
    page.context.clear_cookies()
    page.goto(f"{base}/browse/")
    page.fill("[data-testid=search-input]", "salutations")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_test_id("results")
    assert "Greeter" in results.inner_text()
    results.get_by_role("link").first.click()
    page.wait_for_url(f"{base}/algorithms/grace/greeter/")
    assert "Greets whoever you name" in page.get_by_test_id("docs").inner_text()
