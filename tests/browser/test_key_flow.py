"""In a real browser: sign up, log out and in, make a key, see it once, revoke it."""
import re

import pytest
import requests

from marketplace.models import ApiKey, AuditEvent, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Browser-test-pass-phrase-7"


def test_sign_up_log_in_create_see_once_revoke_and_get_401(page, live_server):
    base = live_server.url
    page.goto(f"{base}/signup/")
    page.fill("#id_username", "erin")
    page.fill("#id_email", "erin@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    default_key = page.get_by_test_id("new-key-secret").inner_text().strip()
    assert re.fullmatch(r"ak_[a-z0-9]{10}_\S+", default_key)
    assert User.objects.filter(username="erin").exists()

    # Log out through the account menu, then log back in.
    page.get_by_test_id("account-menu").click()
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{base}/login/")
    page.fill("#id_username", "erin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    assert page.get_by_test_id("account-menu").inner_text().strip() == "erin"

    # Create a key: its secret is on this page, once.
    page.goto(f"{base}/account/keys/")
    page.fill("#id_name", "browser key")
    page.fill("#id_algorithms", "algo://erin/*")
    page.select_option("#id_data_access", "read")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key-secret").inner_text().strip()
    assert secret.startswith("ak_") and secret != default_key
    me = requests.get(f"{base}/v1/me", headers={"Authorization": secret}, timeout=10)
    assert me.status_code == 200 and me.json()["key"]["scopes"]["algorithms"] == ["algo://erin/*"]

    page.reload()  # the creation redirected, so a reload neither repeats it nor shows the key
    assert secret not in page.content()
    assert page.get_by_test_id("new-key").count() == 0
    assert ApiKey.objects.filter(user__username="erin", name="browser key").count() == 1

    # Revoke it from the table, and the API now refuses it.
    prefix = secret.split("_")[1]
    page.get_by_test_id(f"revoke-{prefix}").click()
    page.wait_for_selector(f"tr[data-key='{prefix}'] .badge.revoked")
    assert "no longer works" in page.locator(".messages").inner_text()
    revoked = requests.get(f"{base}/v1/me", headers={"Authorization": secret}, timeout=10)
    assert revoked.status_code == 401
    assert revoked.json() == {"error": {"message": "This API key has been revoked.",
                                        "error_type": "AuthError"}}
    assert ApiKey.objects.get(prefix=prefix).revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoke", actor__username="erin").count() == 1
    # The default key still works.
    assert requests.get(f"{base}/v1/me", headers={"Authorization": default_key},
                        timeout=10).status_code == 200
