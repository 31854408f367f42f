"""API keys: format, hashing, the three header forms, revocation, expiry, scopes."""
import datetime
import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace import services
from marketplace.errors import AuthError, InputError, PermissionDeniedError
from marketplace.models import ApiKey, AuditEvent, Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def client_with(header_value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header_value)
    return client


def test_key_has_the_documented_shape_and_only_its_hash_is_stored(user):
    issued = services.api_key_create(created_by=user, name="ci")
    prefix, secret = issued.raw.split("_", 2)[1:]
    assert issued.raw.startswith("ak_") and len(prefix) == 10 and len(secret) >= 40
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert key.prefix == prefix
    assert key.key_hash == hashlib.sha256(issued.raw.encode()).hexdigest()
    assert key.last4 == issued.raw[-4:]


def test_no_raw_key_appears_anywhere_in_the_database(user, make_key):
    raws = [make_key(user), make_key(user, name="second")]
    secrets = [raw.split("_", 2)[2] for raw in raws]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dump = repr(cursor.fetchall())
            for secret in secrets:
                assert secret not in dump, f"raw key found in {table}"


@pytest.mark.parametrize("form", ["{key}", "Simple {key}", "Bearer {key}", "simple {key}"])
def test_every_header_form_authenticates(raw_key, user, form):
    response = client_with(form.format(key=raw_key)).get("/v1/me")
    assert response.status_code == 200
    assert response.json()["username"] == user.username


@pytest.mark.parametrize("header", ["ak_nope_nope", "garbage", "Simple ", "Bearer ak_a_b_c"])
def test_wrong_key_gets_401_in_the_envelope(db, header):
    response = client_with(header).get("/v1/me")
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "Invalid API key.", "error_type": "AuthError"}}


def test_key_with_right_prefix_but_wrong_secret_gets_401(raw_key):
    forged = raw_key[:-4] + ("AAAA" if not raw_key.endswith("AAAA") else "BBBB")
    assert client_with(forged).get("/v1/me").status_code == 401


def test_missing_key_gets_401_with_a_challenge(db):
    response = APIClient().get("/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["error_type"] == "AuthError"
    assert response["WWW-Authenticate"] == 'Simple realm="algostore"'


def test_revoked_key_gets_401(user, raw_key):
    key = ApiKey.objects.get(user=user)
    services.api_key_revoke(key=key, actor=user)
    response = client_with(raw_key).get("/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API key has been revoked."


def test_expired_key_gets_401(user, make_key):
    raw = make_key(user, expires_at=timezone.now() + datetime.timedelta(hours=1))
    ApiKey.objects.filter(user=user).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    response = client_with(raw).get("/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API key has expired."


def test_key_of_a_deactivated_user_gets_401(user, raw_key):
    user.is_active = False
    user.save()
    assert client_with(raw_key).get("/v1/me").status_code == 401


def test_last_used_is_written_once_per_resolution_window_not_per_request(user, raw_key, settings):
    settings.API_KEY_LAST_USED_RESOLUTION = 60
    client = client_with(raw_key)
    client.get("/v1/me")
    first = ApiKey.objects.get(user=user).last_used_at
    assert first is not None
    client.get("/v1/me")
    client.get("/v1/me")
    assert ApiKey.objects.get(user=user).last_used_at == first


def test_key_creation_and_revocation_are_audited(user):
    issued = services.api_key_create(created_by=user, name="audited")
    services.api_key_revoke(key=issued.key, actor=user)
    actions = list(AuditEvent.objects.filter(target_id=str(issued.key.pk))
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["api_key.create", "api_key.revoke"]
    assert issued.raw not in repr(list(AuditEvent.objects.values()))


@pytest.mark.parametrize(
    "pattern, path, allowed",
    [
        ("algo://*", ("bob", "x", None), True),
        ("algo://alice/*", ("alice", "sentiment", "1.2.0"), True),
        ("algo://alice/*", ("bob", "sentiment", "1.2.0"), False),
        ("algo://alice/sentiment/*", ("alice", "sentiment", "2.0.0"), True),
        ("algo://alice/sentiment/*", ("alice", "other", "2.0.0"), False),
        ("algo://alice/sentiment/1.*", ("alice", "sentiment", "2.0.0"), False),
        ("algo://alice/sentiment", ("alice", "sentiment", None), True),
        ("algo://alice/sentiment/1.2.0", ("alice", "sentiment", "1.2.0"), True),
        ("algo://alice/sentiment/1.2.0", ("alice", "sentiment", "1.2.1"), False),
        ("algo://alice/*", ("alicex", "sentiment", None), False),
    ],
)
def test_algorithm_patterns(pattern, path, allowed):
    assert ApiKey(algo_patterns=[pattern]).allows_algorithm(*path) is allowed


@pytest.mark.parametrize("pattern", ["algo://alice/sentimen?/1.0.0", "algo://a*", "algo://[ab]/x",
                                     "http://alice/*", "algo://alice/x/1/2"])
def test_malformed_patterns_are_refused(user, pattern):
    with pytest.raises(ValidationError):
        services.api_key_create(created_by=user, name="x",
                                scopes=services.KeyScopes([pattern], "none", False))
    assert not ApiKey.objects.exists()


def test_data_access_levels_are_ordered():
    key = ApiKey(data_access="read")
    assert key.allows_data("read") and not key.allows_data("read-write")
    assert ApiKey(data_access="none").allows_data("none")


def test_parse_scopes_reads_patterns_data_and_manage():
    scopes = services.parse_scopes(["algo://alice/*", "data:read", "manage"])
    assert scopes == services.KeyScopes(["algo://alice/*"], "read", True)
    assert services.parse_scopes(["algo://x/*"]).data_access == "none"
    with pytest.raises(InputError):
        services.parse_scopes(["data:everything"])


def test_only_org_managers_make_org_keys(db):
    membership = MembershipFactory(role=Membership.Role.MEMBER)
    with pytest.raises(PermissionDeniedError):
        services.api_key_create(created_by=membership.user, name="x",
                                organization=membership.organization)
    admin = MembershipFactory(organization=membership.organization, role=Membership.Role.ADMIN)
    issued = services.api_key_create(created_by=admin.user, name="x",
                                     organization=membership.organization)
    assert issued.key.organization == membership.organization and issued.key.user is None
    me = client_with(issued.raw).get("/v1/me").json()
    assert me["acting_as"] == membership.organization.name
    assert me["key"]["owner_type"] == "organization"


def test_authenticate_service_raises_auth_error_for_unknown_key(db):
    with pytest.raises(AuthError):
        services.api_key_authenticate(raw="ak_unknown_secret")


class TestKeysApi:
    def test_create_returns_the_secret_once_and_list_never_does(self, api, user):
        response = api.post("/v1/keys", {"name": "ci", "scopes": {"algorithms": ["algo://alice/*"],
                                                                  "data": "read"}}, format="json")
        assert response.status_code == 201
        body = response.json()
        assert body["key"].startswith(f"ak_{body['id']}_")
        assert body["scopes"] == {"algorithms": ["algo://alice/*"], "data": "read", "manage": False}
        listing = api.get("/v1/keys")
        assert listing.status_code == 200
        assert body["key"] not in listing.content.decode()
        assert {k["id"] for k in listing.json()["results"]} == set(
            ApiKey.objects.filter(user=user).values_list("prefix", flat=True))

    def test_an_owner_other_than_the_keys_own_is_refused_not_ignored(self, api, user):
        """POST /v1/keys with "owner": an organization made a personal key, with no word."""
        before = ApiKey.objects.count()
        response = api.post("/v1/keys", {"name": "org key", "owner": "someorg"}, format="json")
        assert response.status_code == 400
        assert response.json()["error"] == {
            "message": f"A key made over the API belongs to this key's owner ({user.username}); "
                       "make someorg's keys on the keys page.", "error_type": "InputError"}
        assert ApiKey.objects.count() == before
        same = api.post("/v1/keys", {"name": "mine", "owner": user.username.upper()},
                        format="json")
        assert same.status_code == 201

    def test_new_key_works_and_revoking_it_over_the_api_stops_it(self, api):
        raw = api.post("/v1/keys", {"name": "temp"}, format="json").json()["key"]
        prefix = raw.split("_")[1]
        assert client_with(raw).get("/v1/me").status_code == 200
        response = api.delete(f"/v1/keys/{prefix}")
        assert response.status_code == 200 and response.json()["active"] is False
        assert client_with(raw).get("/v1/me").status_code == 401

    def test_a_narrow_key_cannot_mint_a_wider_one(self, user, make_key):
        narrow = make_key(user, scopes=services.KeyScopes(["algo://alice/*"], "read", True))
        client = client_with(narrow)
        wider = client.post("/v1/keys", {"name": "x", "scopes": {"algorithms": ["algo://*"]}},
                            format="json")
        assert wider.status_code == 403
        assert wider.json()["error"]["error_type"] == "AuthError"
        more_data = client.post("/v1/keys", {"name": "x", "scopes": {"data": "read-write"}},
                                format="json")
        assert more_data.status_code == 403
        ok = client.post("/v1/keys", {"name": "x", "scopes": {
            "algorithms": ["algo://alice/sentiment/*"], "data": "read"}}, format="json")
        assert ok.status_code == 201
        assert ApiKey.objects.filter(user=user).count() == 2

    def test_a_key_without_manage_scope_cannot_touch_keys(self, user, make_key):
        raw = make_key(user, scopes=services.KeyScopes(["algo://*"], "read-write", False))
        assert client_with(raw).get("/v1/keys").status_code == 403
        assert client_with(raw).post("/v1/keys", {"name": "x"}, format="json").status_code == 403

    def test_someone_elses_key_is_404(self, api, make_key):
        other = UserFactory()
        make_key(other)
        prefix = ApiKey.objects.get(user=other).prefix
        assert api.get(f"/v1/keys/{prefix}").status_code == 404
        assert api.delete(f"/v1/keys/{prefix}").status_code == 404
        assert ApiKey.objects.get(user=other).revoked_at is None

    def test_bad_input_is_an_input_error(self, api, user):
        response = api.post("/v1/keys", {"scopes": {"data": "everything"}}, format="json")
        assert response.status_code == 400
        body = response.json()["error"]
        assert body["error_type"] == "InputError" and "name" in body["message"]
        assert ApiKey.objects.filter(user=user).count() == 1

    def test_key_creation_is_rate_limited(self, api, settings):
        from rest_framework.throttling import UserRateThrottle

        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "key_create": "2/hour"}
        original = UserRateThrottle.THROTTLE_RATES
        UserRateThrottle.THROTTLE_RATES = rates
        try:
            responses = [api.post("/v1/keys", {"name": f"k{i}"}, format="json") for i in range(3)]
        finally:
            UserRateThrottle.THROTTLE_RATES = original
        assert [r.status_code for r in responses] == [201, 201, 429]
        assert responses[2].json()["error"]["error_type"] == "RateLimited"
        assert int(responses[2]["Retry-After"]) > 0


class TestKeyLineage:
    def test_revoking_a_key_revokes_the_keys_it_made(self, api, user):
        child = api.post("/v1/keys", {"name": "child", "scopes": {"manage": True}},
                         format="json").json()["key"]
        grandchild = client_with(child).post("/v1/keys", {"name": "gc"}, format="json").json()["key"]
        parent = ApiKey.objects.get(user=user, name="test key")
        services.api_key_revoke(key=parent, actor=user)
        assert client_with(child).get("/v1/me").status_code == 401
        assert client_with(grandchild).get("/v1/me").status_code == 401
        assert ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() == 0

    def test_a_prefix_pattern_cannot_mint_a_wider_prefix(self, user, make_key):
        raw = make_key(user, scopes=services.KeyScopes(["algo://alice/sentiment/*"], "none", True))
        response = client_with(raw).post("/v1/keys", {"name": "x", "scopes": {
            "algorithms": ["algo://alice/*"]}}, format="json")
        assert response.status_code == 403

    def test_an_org_key_stops_when_its_creator_leaves_the_org(self, db):
        admin = MembershipFactory(role=Membership.Role.ADMIN)
        owner = MembershipFactory(organization=admin.organization, role=Membership.Role.OWNER)
        raw = services.api_key_create(created_by=admin.user, name="ci",
                                      organization=admin.organization).raw
        assert client_with(raw).get("/v1/me").status_code == 200
        services.membership_remove(organization=admin.organization, actor=owner.user,
                                   user=admin.user)
        response = client_with(raw).get("/v1/me")
        assert response.status_code == 401
        assert "no longer administers" in response.json()["error"]["message"]

    def test_an_org_key_manages_only_its_orgs_keys(self, db, make_key):
        admin = MembershipFactory(role=Membership.Role.ADMIN)
        personal = make_key(admin.user)
        org_key = services.api_key_create(created_by=admin.user, name="org",
                                          organization=admin.organization).raw
        listing = client_with(org_key).get("/v1/keys").json()["results"]
        assert [k["owner_type"] for k in listing] == ["organization"]
        personal_prefix = personal.split("_")[1]
        assert client_with(org_key).delete(f"/v1/keys/{personal_prefix}").status_code == 404
        assert client_with(personal).get("/v1/me").status_code == 200


def test_making_a_key_leaves_every_cached_key_cached_and_derived_keys_are_never_cached(
        user, raw_key):
    """A new key can have no cached answer, so making one forgets nothing; a derived key
    serves one call and is never cached, so retiring it needs no process told, and it
    stops at once."""
    from marketplace.services.api_keys import authenticated_keys, hash_key

    key = services.api_key_authenticate(raw=raw_key)
    epoch = authenticated_keys.epoch()
    assert authenticated_keys.get(hash_key(raw_key), epoch) is not None
    services.api_key_create(created_by=user, name="another")
    derived = services.api_key_create_derived(parent=key, name="call x", lifetime_seconds=60)
    assert authenticated_keys.epoch() == epoch  # nothing forgotten
    assert authenticated_keys.get(hash_key(raw_key), epoch) is not None
    assert services.api_key_authenticate(raw=derived.raw).pk == derived.key.pk
    assert authenticated_keys.get(hash_key(derived.raw), epoch) is None  # not cached
    services.api_key_retire(key=derived.key)
    assert authenticated_keys.epoch() == epoch
    with pytest.raises(AuthError, match="revoked"):
        services.api_key_authenticate(raw=derived.raw)
    services.api_key_revoke(key=key, actor=user)  # any other change to a key: forgotten
    with pytest.raises(AuthError, match="revoked"):
        services.api_key_authenticate(raw=raw_key)


def test_retiring_a_derived_key_never_revokes_another_key_that_got_its_id(user, raw_key):
    """A derived key need not wait for the disk when written: after a crash of the database
    its id may be another key's, which retiring the lost one must leave alone."""
    from marketplace.models import ApiKey

    key = services.api_key_authenticate(raw=raw_key)
    derived = services.api_key_create_derived(parent=key, name="call y", lifetime_seconds=60)
    ApiKey.objects.filter(pk=derived.key.pk).update(prefix="z" * len(derived.key.prefix))
    services.api_key_retire(key=derived.key)
    assert ApiKey.objects.get(pk=derived.key.pk).revoked_at is None
    ApiKey.objects.filter(pk=derived.key.pk).update(prefix=derived.key.prefix)
    services.api_key_retire(key=derived.key)
    assert ApiKey.objects.get(pk=derived.key.pk).revoked_at is not None


def test_a_derived_key_is_retired_in_another_writes_statement_whatever_it_changed(user,
                                                                                raw_key):
    """How a call's close retires its derived key: a step of the closing statement that runs
    even when the close itself changes nothing (the other of two finishers came first)."""
    from billing.models import Account
    from marketplace.models import ApiKey
    from marketplace.row_update import Update, write_chain

    key = services.api_key_authenticate(raw=raw_key)
    derived = services.api_key_create_derived(parent=key, name="call z", lifetime_seconds=60)
    done = write_chain([Update(Account, 10 ** 12, add={"reserved": 1}),  # no such row
                        services.api_key_retiring(key=derived.key)])
    assert done == [None, derived.key.pk]
    assert ApiKey.objects.get(pk=derived.key.pk).revoked_at is not None
    with pytest.raises(ValueError):
        services.api_key_retiring(key=key)  # a key someone holds is revoked, not retired


def test_an_uncached_key_is_read_in_one_query_with_all_a_call_needs(db,
                                                                    django_assert_num_queries):
    """An organization's key, derived for a call (never cached, never marked used): the
    one statement brings the key as the ORM reads it, its organization, creator, parent,
    and whether its creator still administers the organization."""
    from marketplace.services.api_keys import _authenticate_uncached, hash_key

    admin = MembershipFactory(role=Membership.Role.ADMIN)
    issued = services.api_key_create(
        created_by=admin.user, name="org", organization=admin.organization,
        scopes=services.KeyScopes(["algo://alice/*"], "read", False))
    parent = services.api_key_authenticate(raw=issued.raw)
    derived = services.api_key_create_derived(parent=parent, name="call y", lifetime_seconds=60)
    with django_assert_num_queries(1):
        key = _authenticate_uncached(derived.raw, hash_key(derived.raw))
        assert key.organization == admin.organization and key.user is None
        assert key.created_by == admin.user and key.parent.pk == parent.pk
        assert key.creator_manages_org is True
        assert key.made_for_a_call is False  # no call names it (read in the same statement)
    stored = ApiKey.objects.get(pk=derived.key.pk)
    for field in ApiKey._meta.concrete_fields:
        assert getattr(key, field.attname) == getattr(stored, field.attname), field.name
    assert key.algo_patterns == ["algo://alice/*"] and key.expires_at.tzinfo is not None
    admin.role = Membership.Role.MEMBER
    admin.save()
    with pytest.raises(AuthError, match="no longer administers"):
        _authenticate_uncached(derived.raw, hash_key(derived.raw))
    with django_assert_num_queries(1), pytest.raises(AuthError, match="Invalid"):
        _authenticate_uncached("ak_nosuchkey_secret", "0" * 64)


def test_a_persons_expiring_call_only_key_is_not_an_algorithms_key(user):
    """Such a key has a derived key's shape (made from a key, no manage, an expiry), but
    only a key a call names acts for a call (reads the catalog as anyone does)."""
    from datetime import timedelta

    from django.utils import timezone

    parent = services.api_key_create(created_by=user, name="maker").key
    own = services.api_key_create_from_key(
        parent=parent, name="ci", scopes=services.KeyScopes(["algo://*"], "read", False),
        expires_at=timezone.now() + timedelta(days=1)).key
    assert own.is_derived and not own.made_for_a_call
    assert not getattr(own.acting_user, "acting_for_a_call", False)
