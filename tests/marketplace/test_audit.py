"""The audit log: append-only, surviving what it describes, fed by every admin change."""
import pytest
from django.test import Client

from marketplace import services
from marketplace.models import AuditEvent
from marketplace.models.audit import AppendOnlyError
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(user):
    return services.audit_record(action="test.thing", actor=user, target=user, data={"a": 1})


def test_events_cannot_be_changed_or_deleted(event):
    event.action = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent(pk=event.pk, action="forged", created_at=event.created_at).save()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"


def test_events_survive_the_deletion_of_their_actor_and_target(event, user):
    user_id, username = user.pk, user.username
    user.delete()
    event.refresh_from_db()
    assert event.actor is None
    assert (event.actor_username, event.target_type, event.target_id, event.target_repr) == (
        username, "marketplace.user", str(user_id), username)


def test_events_survive_the_deletion_of_their_organization(user):
    org = services.organization_create(actor=user, name="gone")
    org.delete()
    event = AuditEvent.objects.get(action="organization.create")
    assert (event.organization, event.organization_name) == (None, "gone")


@pytest.fixture
def operator(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(operator):
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.force_login(operator)
    return client


def test_admin_changes_are_audited_with_the_operator_and_ip(admin_client, operator, user):
    response = admin_client.post(f"/admin/marketplace/user/{user.pk}/change/", {
        "username": user.username, "email": "changed@example.com", "is_active": "on",
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "00:00:00",
    })
    assert response.status_code == 302, response.content[:500]
    event = AuditEvent.objects.get(action="admin.change")
    assert (event.actor, event.target_id, event.ip_address) == (operator, str(user.pk),
                                                                "198.51.100.7")
    assert "Email" in event.data["change"]


def test_admin_deletions_are_audited(admin_client, user):
    response = admin_client.post("/admin/marketplace/user/", {
        "action": "delete_selected", "_selected_action": [user.pk], "post": "yes"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.delete")
    assert event.target_repr == user.username


def test_admin_revoke_action_revokes_through_the_service(admin_client, operator, make_key):
    owner = UserFactory()
    make_key(owner)
    key = owner.api_keys.get()
    response = admin_client.post("/admin/marketplace/apikey/", {
        "action": "revoke_selected", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.revoke")
    assert event.actor == operator and event.data["by_operator"] is True


def test_audit_log_is_browsable_but_read_only_in_the_admin(admin_client, event):
    listing = admin_client.get("/admin/marketplace/auditevent/?action=test.thing")
    assert listing.status_code == 200 and b"test.thing" in listing.content
    assert admin_client.get("/admin/marketplace/auditevent/add/").status_code == 403
    detail = admin_client.get(f"/admin/marketplace/auditevent/{event.pk}/change/")
    assert detail.status_code == 200 and b'name="action"' not in detail.content
    response = admin_client.post(f"/admin/marketplace/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403


def test_admin_never_shows_a_keys_hash(admin_client, make_key):
    owner = UserFactory()
    make_key(owner)
    key = owner.api_keys.get()
    page = admin_client.get(f"/admin/marketplace/apikey/{key.pk}/change/").content.decode()
    assert key.key_hash not in page and key.masked in admin_client.get(
        "/admin/marketplace/apikey/").content.decode()
    assert admin_client.get("/admin/marketplace/apikey/add/").status_code == 403
