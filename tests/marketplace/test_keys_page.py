"""The API keys page: create (secret shown once), list, revoke."""
import pytest
from django.test import Client

from marketplace.models import ApiKey, Membership
from marketplace.services.api_keys import hash_key
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


def test_creating_a_key_shows_its_secret_in_that_response_only(browser, user):
    response = browser.post("/account/keys/", {"name": "laptop", "owner": "",
                                               "algorithms": "algo://alice/*\nalgo://bob/x/*",
                                               "data_access": "read", "can_manage": ""})
    assert response.status_code == 302 and response["Location"] == "/account/keys/"
    shown = browser.get("/account/keys/")
    raw = shown.context["revealed"]["raw"]
    assert raw in shown.content.decode()
    key = ApiKey.objects.get(user=user, name="laptop")
    assert key.key_hash == hash_key(raw)
    assert key.algo_patterns == ["algo://alice/*", "algo://bob/x/*"]
    assert (key.data_access, key.can_manage) == ("read", False)
    listing = browser.get("/account/keys/").content.decode()
    assert raw not in listing and key.masked in listing


def test_the_secret_cookie_is_bound_to_its_user(browser, user):
    browser.post("/account/keys/", {"name": "mine", "algorithms": "algo://*",
                                    "data_access": "read"})
    cookie = browser.cookies["algostore_new_key"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    intruder = Client()
    intruder.force_login(UserFactory())
    intruder.cookies["algostore_new_key"] = cookie.value
    assert intruder.get("/account/keys/").context["revealed"] is None


def test_a_replayed_reveal_cookie_shows_nothing(browser, user):
    response = browser.post("/account/keys/", {"name": "once", "algorithms": "algo://*",
                                               "data_access": "read"})
    cookie = response.cookies["algostore_new_key"]
    assert cookie["path"] == "/account/keys/"
    first = browser.get("/account/keys/")
    assert first.context["revealed"]["name"] == "once"
    assert first["Cache-Control"] == "no-store, max-age=0"
    browser.cookies["algostore_new_key"] = cookie.value  # put the deleted cookie back
    assert browser.get("/account/keys/").context["revealed"] is None


def test_bad_pattern_is_refused_and_creates_nothing(browser, user):
    response = browser.post("/account/keys/", {"name": "x", "algorithms": "http://evil",
                                               "data_access": "read"})
    assert response.status_code == 200
    assert "is not a pattern" in response.content.decode()
    assert not ApiKey.objects.filter(user=user).exists()


def test_past_expiry_is_refused(browser, user):
    response = browser.post("/account/keys/", {"name": "x", "algorithms": "algo://*",
                                               "data_access": "read", "expires_on": "2001-01-01"})
    assert "Choose a day in the future" in response.content.decode()
    assert not ApiKey.objects.filter(user=user).exists()


def test_revoking_from_the_page(browser, user, make_key):
    make_key(user)
    key = ApiKey.objects.get(user=user)
    response = browser.post(f"/account/keys/{key.prefix}/revoke/")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_cannot_revoke_someone_elses_key(browser, make_key):
    other = UserFactory()
    make_key(other)
    key = ApiKey.objects.get(user=other)
    assert browser.post(f"/account/keys/{key.prefix}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_org_admin_makes_an_org_key_from_the_page(browser, user):
    membership = MembershipFactory(user=user, role=Membership.Role.ADMIN)
    org = membership.organization
    response = browser.post("/account/keys/", {"name": "team", "owner": org.name,
                                               "algorithms": "algo://*", "data_access": "none"})
    assert response.status_code == 302
    assert ApiKey.objects.get(name="team").organization == org


def test_keys_page_needs_login():
    response = Client().get("/account/keys/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
