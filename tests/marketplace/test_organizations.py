"""Organizations: the official Algorithmia client's calls, roles, and 404 for outsiders."""
import Algorithmia
import pytest

from marketplace import services
from marketplace.errors import InputError, PermissionDeniedError
from marketplace.models import AuditEvent, Membership, Organization
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, raw_key):
    client = Algorithmia.client(raw_key, api_address=live_server.url)
    yield client
    client.requestSession.close()  # no keep-alive connection outlives the live server


def test_the_organization_types_are_public_as_the_generated_client_expects(live_server):
    """algorithmia-api-client's get_all_organization_types sends no key (it was a 401)."""
    import algorithmia_api_client as generated

    api = generated.DefaultApi(generated.ApiClient(generated.Configuration(
        host=f"{live_server.url}/v1")))
    types = api.get_all_organization_types()
    assert {(t.id, t.name) for t in types} == {
        (Organization.TYPE_IDS[kind], kind.value) for kind in Organization.Type}


def test_official_client_creates_reads_edits_and_invites(client, user, live_server):
    types = client.get_org_types()
    assert {t["name"] for t in types} == {"basic", "pro"}
    created = client.create_org({"org_name": "acme", "org_label": "Acme Inc",
                                 "org_contact_name": "Ann", "org_email": "ops@acme.example",
                                 "org_url": "https://acme.example", "type_id": "pro"})
    assert created["org_name"] == "acme" and created["type"] == "pro"
    org = Organization.objects.get(name="acme")
    assert Membership.objects.get(organization=org, user=user).role == "owner"

    fetched = client.get_org("acme")
    assert fetched["org_label"] == "Acme Inc" and fetched["resource_type"] == "organization"

    client.edit_org("acme", {"org_label": "Acme Corporation", "type_id": "basic"})
    org.refresh_from_db()
    assert (org.label, org.org_type) == ("Acme Corporation", "basic")

    bob = UserFactory(username="bob")
    client.invite_to_org("acme", "bob")
    assert Membership.objects.get(organization=org, user=bob).role == "member"
    actions = set(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    assert actions == {"organization.create", "organization.update", "organization.member_add"}


def test_a_bad_type_is_refused_and_creates_nothing(client):
    # The official client turns an unknown type name into "" before sending it.
    response = client.requestSession.post(
        f"{client.apiAddress}/v1/organizations", json={"org_name": "acme", "type_id": ""},
        headers={"Authorization": client.apiKey})
    assert response.status_code == 400
    assert response.json() == {"error": {"message": "invalid type_id", "error_type": "InputError"}}
    with pytest.raises(Exception, match="Non-Algorithm related Failure: <Response \\[400\\]>"):
        client.create_org({"org_name": "acme", "type_id": "platinum"})
    assert not Organization.objects.filter(name="acme").exists()


def test_outsiders_get_404_for_an_organization(client):
    owner = UserFactory()
    services.organization_create(actor=owner, name="secretorg")
    response = client.getHelper("/v1/organizations/secretorg")
    assert response.status_code == 404
    assert response.json()["error"]["error_type"] == "NotFound"
    assert client.getHelper("/v1/organizations/secretorg/members").status_code == 404


def test_members_list_and_role_change_over_the_api(client, user):
    org = services.organization_create(actor=user, name="crew")
    bob = UserFactory(username="bob")
    put = client.requestSession.put(
        f"{client.apiAddress}/v1/organizations/crew/members/bob",
        json={"role": "admin"}, headers={"Authorization": client.apiKey})
    assert put.status_code == 201 and put.json()["role"] == "admin"
    members = client.getJsonHelper("/v1/organizations/crew/members")["results"]
    assert [(m["username"], m["role"]) for m in members] == [("bob", "admin"),
                                                             (user.username, "owner")]
    assert Membership.objects.get(organization=org, user=bob).role == "admin"


def test_members_cannot_add_people(db):
    membership = MembershipFactory(role=Membership.Role.MEMBER)
    with pytest.raises(PermissionDeniedError):
        services.membership_add(organization=membership.organization, actor=membership.user,
                                user=UserFactory())


def test_only_owners_make_owners(db):
    admin = MembershipFactory(role=Membership.Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        services.membership_add(organization=admin.organization, actor=admin.user,
                                user=UserFactory(), role="owner")


def test_the_last_owner_cannot_leave_or_be_demoted(user):
    org = services.organization_create(actor=user, name="solo")
    with pytest.raises(InputError):
        services.membership_remove(organization=org, actor=user, user=user)
    with pytest.raises(InputError):
        services.membership_set_role(organization=org, actor=user, user=user, role="member")
    assert Membership.objects.get(organization=org, user=user).role == "owner"


def test_a_member_may_leave(user):
    org = services.organization_create(actor=user, name="club")
    bob = UserFactory()
    services.membership_add(organization=org, actor=user, user=bob)
    services.membership_remove(organization=org, actor=bob, user=bob)
    assert not Membership.objects.filter(organization=org, user=bob).exists()
    event = AuditEvent.objects.get(action="organization.member_remove")
    assert event.data == {"user": bob.username, "role": "member"}


def test_org_keys_cannot_manage_organizations(live_server, user, make_key):
    org = services.organization_create(actor=user, name="keyed")
    org_client = Algorithmia.client(make_key(user, organization=org), api_address=live_server.url)
    response = org_client.requestSession.post(
        f"{live_server.url}/v1/organizations", json={"org_name": "another", "type_id": "basic"},
        headers={"Authorization": org_client.apiKey})
    assert response.status_code == 403
    assert response.json()["error"]["error_type"] == "AuthError"
    assert not Organization.objects.filter(name="another").exists()


def test_a_reserved_or_taken_name_is_a_400_input_error(client, user):
    for name in ("admin", user.username):
        response = client.requestSession.post(
            f"{client.apiAddress}/v1/organizations", json={"org_name": name, "type_id": "basic"},
            headers={"Authorization": client.apiKey})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["error_type"] == "InputError" and error["message"].startswith("name: ")
    assert not Organization.objects.exists()
