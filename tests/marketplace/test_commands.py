"""create_api_key and seed_demo."""
import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from marketplace.models import ApiKey, Membership, Organization, User

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def me(raw: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=raw)
    return client.get("/v1/me")


def test_create_user_and_key_prints_a_working_key_last():
    lines = run("create_api_key", "alice", "--create-user")
    raw = lines[-1]
    assert raw.startswith("ak_")
    response = me(raw)
    assert response.status_code == 200 and response.json()["username"] == "alice"
    key = ApiKey.objects.get(user__username="alice")
    assert (key.algo_patterns, key.data_access, key.can_manage) == (["algo://*"], "read-write", True)


def test_scopes_are_parsed():
    raw = run("create_api_key", "bob", "--create-user", "--scopes", "algo://bob/*", "data:read")[-1]
    assert me(raw).json()["key"]["scopes"] == {"algorithms": ["algo://bob/*"], "data": "read",
                                               "manage": False}


def test_org_key_for_a_new_org():
    raw = run("create_api_key", "carol", "--create-user", "--org", "carolco")[-1]
    assert me(raw).json()["acting_as"] == "carolco"
    org = Organization.objects.get(name="carolco")
    assert Membership.objects.get(organization=org).role == "owner"


def test_unknown_user_without_create_is_an_error():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("create_api_key", "nobody")
    assert not User.objects.exists()


def test_reserved_name_is_an_error():
    with pytest.raises(CommandError, match="reserved"):
        run("create_api_key", "admin", "--create-user")


def test_seed_demo_replaces_the_demo_key_each_run():
    first = run("seed_demo")[-1]
    second = run("seed_demo")[-1]
    assert me(first).status_code == 401
    assert me(second).status_code == 200
    assert User.objects.filter(username="demo").count() == 1
