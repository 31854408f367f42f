"""Algorithm secrets: set with the official client, encrypted at rest, never returned, seen
only by that algorithm's runners as environment variables."""
import pytest
from django.db import connection

from catalog.models import AlgorithmSecret
from marketplace.models import AuditEvent
from tests.execution.conftest import bundle_files, publish

pytestmark = pytest.mark.django_db(transaction=True)

VALUE = "s3cr3t-value-that-must-not-leak"


def test_set_get_and_use_a_secret(client, probe, user, capsys):
    algo = client.algo(f"{user.username}/probe")
    assert algo.pipe("warm").result == "echo: warm"  # a runner without the secret exists
    created = algo.set_secret("openai", "OPENAI_API_KEY", VALUE, "for the model")
    assert created["secret_key"] == "OPENAI_API_KEY" and "secret_value" not in created
    listed = algo.get_secrets()["secrets"]
    assert [s["secret_key"] for s in listed] == ["OPENAI_API_KEY"]
    assert VALUE not in repr(listed)
    # New runners start with it; the one started before is not reused.
    env = algo.pipe({"action": "env"}).result
    assert env["OPENAI_API_KEY"] == VALUE
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value FROM catalog_algorithmsecret")
        stored = bytes(cursor.fetchone()[0])
    assert VALUE.encode() not in stored
    assert AuditEvent.objects.filter(action="algorithm.secret_set").count() == 1
    assert VALUE not in repr(list(AuditEvent.objects.values()))


def test_another_algorithm_does_not_see_it(client, probe, user):
    client.algo(f"{user.username}/probe").set_secret("token", "MY_TOKEN", VALUE)
    publish(user, "neighbour", bundle_files("probe", rename="neighbour"))
    env = client.algo(f"{user.username}/neighbour").pipe({"action": "env"}).result
    assert "MY_TOKEN" not in env


def test_bad_names_and_strangers_are_refused(client, probe, user, live_server, make_key):
    import Algorithmia

    algorithm_id = client.getJsonHelper(f"/v1/algorithms/{user.username}/probe")["id"]
    url = f"{live_server.url}/v1/algorithms/{algorithm_id}/secrets"
    bad = client.requestSession.post(url, json={"secret_key": "PATH", "secret_value": "x"},
                                     headers={"Authorization": client.apiKey})
    assert bad.status_code == 400 and "set by the platform" in bad.json()["error"]["message"]
    other = client.requestSession.post(
        url, json={"secret_key": "TOKEN", "secret_value": "x", "provider_id": "aws-secrets"},
        headers={"Authorization": client.apiKey})
    assert other.status_code == 400
    assert other.json()["error"]["message"] == (
        'provider_id: Unknown secret provider "aws-secrets": the one provider is '
        '"algostore-encrypted".')
    from tests.factories import UserFactory

    stranger = Algorithmia.client(make_key(UserFactory()), api_address=live_server.url)
    for method in ("get", "post"):
        response = getattr(stranger.requestSession, method)(
            url, json={"secret_key": "X", "secret_value": "y"},
            headers={"Authorization": stranger.apiKey})
        assert response.status_code == 404
    assert not AlgorithmSecret.objects.exists()
    stranger.requestSession.close()
