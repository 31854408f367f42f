"""Users and the shared namespace; sign-up, log-in and password pages."""
import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from marketplace import services
from marketplace.services.api_keys import hash_key
from marketplace.models import ApiKey, AuditEvent, Organization, User
from tests.factories import PASSWORD, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "a-Long-enough-pass-phrase-42"


@pytest.mark.parametrize("name", ["a", "x" * 41, "has-dash", "has space", "dot.name", "ünï"])
def test_malformed_names_are_refused(name):
    with pytest.raises(ValidationError):
        services.user_create(username=name, email="a@example.com")
    assert not User.objects.exists()


@pytest.mark.parametrize("name", ["admin", "Admin", "api", "docs", "me", "algo"])
def test_reserved_names_are_refused(name):
    with pytest.raises(ValidationError, match="reserved"):
        services.user_create(username=name, email="a@example.com")


def test_names_at_the_bounds_are_accepted():
    assert services.user_create(username="ab", email="a@example.com").username == "ab"
    assert services.user_create(username="A_1" + "z" * 37, email="b@example.com")


def test_usernames_are_unique_whatever_the_case():
    UserFactory(username="Alice")
    with pytest.raises(ValidationError, match="taken"):
        services.user_create(username="alice", email="x@example.com")


def test_a_user_cannot_take_an_organizations_name():
    OrganizationFactory(name="acme")
    with pytest.raises(ValidationError, match="taken"):
        services.user_create(username="ACME", email="x@example.com")


def test_an_organization_cannot_take_a_users_name(user):
    with pytest.raises(ValidationError, match="taken"):
        services.organization_create(actor=user, name=user.username.upper())
    assert not Organization.objects.exists()


def test_signup_makes_the_user_a_default_key_and_an_audit_event():
    user, issued = services.user_signup(username="carol", email="c@example.com",
                                        password=GOOD_PASSWORD)
    key = ApiKey.objects.get(user=user)
    assert key.name == "Default key" and key.algo_patterns == ["algo://*"]
    assert key.data_access == "read-write" and key.can_manage
    assert issued.key == key
    assert AuditEvent.objects.filter(action="user.signup", actor=user).count() == 1


def test_signup_page_shows_the_default_key_once_and_logs_in():
    client = Client()
    response = client.post("/signup/", {"username": "dave", "email": "d@example.com",
                                        "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/welcome/"
    welcome = client.get("/welcome/")
    raw = welcome.context["revealed"]["raw"]
    assert raw.startswith("ak_") and raw in welcome.content.decode()
    assert ApiKey.objects.get(user__username="dave").key_hash == hash_key(raw)
    assert raw not in client.get("/welcome/").content.decode()  # once only
    assert client.get("/dashboard/").status_code == 200


def test_signup_page_refuses_a_taken_name_and_creates_nothing(user):
    response = Client().post("/signup/", {"username": user.username.upper(), "email": "x@e.com",
                                          "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert response.status_code == 200
    assert "taken" in response.content.decode()
    assert User.objects.count() == 1


def test_signup_page_refuses_an_email_already_in_use_and_creates_nothing(user):
    response = Client().post("/signup/", {"username": "another", "email": user.email.upper(),
                                          "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert response.status_code == 200
    assert "An account with this email address exists already" in response.content.decode()
    assert User.objects.count() == 1


def test_login_is_audited_with_ip_and_user_agent(user):
    client = Client(HTTP_USER_AGENT="pytest-browser/1.0", REMOTE_ADDR="203.0.113.9")
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.login")
    assert (event.actor, event.ip_address, event.user_agent) == (user, "203.0.113.9",
                                                                 "pytest-browser/1.0")


def test_failed_login_is_audited_without_the_password(user):
    Client().post("/login/", {"username": user.username, "password": "wrong-password-x"})
    event = AuditEvent.objects.get(action="user.login_failed")
    assert event.data == {"username": user.username}
    assert "wrong-password-x" not in repr(event.data)


def test_logout_is_a_post_and_is_audited(user):
    client = Client()
    client.force_login(user)
    assert client.post("/logout/").status_code == 302
    assert AuditEvent.objects.filter(action="user.logout", actor=user).exists()
    assert client.get("/dashboard/").status_code == 302


def test_password_change_works_and_is_audited(user):
    client = Client()
    client.force_login(user)
    response = client.post("/account/password/", {"old_password": PASSWORD,
                                                  "new_password1": GOOD_PASSWORD,
                                                  "new_password2": GOOD_PASSWORD})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(GOOD_PASSWORD)
    assert AuditEvent.objects.filter(action="user.password_change", actor=user).exists()
