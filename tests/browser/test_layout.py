"""In a real browser: no page is wider than the window, from a phone to a laptop. Wide
content (a table of keys, a long command in the docs) scrolls in its own box instead."""
import pytest

from catalog import services
from tests.browser.conftest import log_in
from tests.catalog.conftest import fake_successful_build
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (390, 800, 1024, 1280)

OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .filter(e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') return false; }  // scrolls in its box
      return true; })
    .slice(0, 5).map(e => `${e.tagName}.${e.className} ends at ${Math.round(e.getBoundingClientRect().right)}`);
}"""


def test_pages_fit_the_window_at_every_width(page, live_server, make_key):
    base = live_server.url
    author = UserFactory(username="ada")
    algorithm = services.algorithm_create(actor=author, owner="ada", name="wide_table_test",
                                          tagline="An algorithm with a long name for a table")
    fake_successful_build(algorithm, author)
    services.version_publish(algorithm=algorithm, actor=author, version_type="minor")
    for number in range(3):  # a keys table of several rows, each with a cap form
        make_key(author, name=f"a key with a fairly long name {number}")
    failed = []  # every request a page makes is answered
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    log_in(page, base, author, PASSWORD)
    # The pages name their icon (browsers asked for /favicon.ico, a 404 on every page).
    icon = page.evaluate("document.querySelector('link[rel=icon]')?.href")
    assert icon and page.request.get(icon).status == 200
    paths = ["/", "/browse/", "/algorithms/ada/wide_table_test/",
             "/algorithms/ada/wide_table_test/manage/", "/dashboard/", "/account/keys/",
             "/orgs/", "/docs/", "/docs/benchmarks/", "/docs/deploy/", "/publish/", "/billing/", "/data/"]
    overflowing = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            response = page.goto(base + path)
            assert response.status == 200, path
            wide = page.evaluate(OVERFLOWING)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            if wide or scroll > width:
                overflowing[(width, path)] = (scroll, wide)
        # A form error on the keys page (it was 7 px too wide at 1,280 px with one).
        page.goto(f"{base}/account/keys/")
        page.fill("#id_name", "bad pattern")
        page.fill("#id_algorithms", "not-a-pattern/" + "x" * 80)
        page.get_by_role("button", name="Create key").click()
        assert page.locator(".errors, .error").count() >= 1
        if page.evaluate("document.documentElement.scrollWidth") > width:
            overflowing[(width, "keys with an error")] = page.evaluate(OVERFLOWING)
    assert overflowing == {}
    assert failed == []
