"""In a real browser: make a collection, upload a file with the progress bar, download it."""
import pytest
import requests

from datastore.models import DataFile
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_collection_upload_with_progress_and_download(page, live_server, tmp_path):
    user = UserFactory()
    base = live_server.url
    log_in(page, base, user, PASSWORD)
    page.get_by_test_id("account-menu").click()
    page.get_by_role("group").get_by_role("link", name="Data").click()
    page.fill("input[name=name]", "photos")
    page.get_by_role("button", name="Create collection").click()
    page.wait_for_url(f"{base}/data/{user.username}/photos/")
    local = tmp_path / "big.bin"
    local.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: the bar has something to show
    page.get_by_test_id("file-input").set_input_files(str(local))
    with page.expect_response(lambda r: r.url.endswith("/upload/")) as sent:
        page.get_by_role("button", name="Upload").click()
    # The page's script sent it (XHR, with the progress bar), not the plain form post.
    assert "application/json" in sent.value.request.headers["accept"]
    assert sent.value.status == 200
    page.wait_for_selector('tr[data-file="big.bin"]')  # the page reloaded after the upload
    assert DataFile.objects.get().size == 10_240_000
    link = page.get_by_role("link", name="big.bin").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    body = requests.get(f"{base}{link}", cookies=cookies, timeout=30).content
    assert body == local.read_bytes()
