"""Publishing semantic versions, version resolution and algorithm lifecycle rules."""
import pytest

from catalog import selectors, services
from catalog.models import Algorithm, AlgorithmVersion, Build
from marketplace.errors import InputError, NotFoundError, PermissionDeniedError
from marketplace.models import AuditEvent
from tests.catalog.conftest import fake_successful_build
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def publish(algorithm, user, version_type="minor", **kwargs):
    return services.version_publish(algorithm=algorithm, actor=user, version_type=version_type,
                                    **kwargs)


@pytest.mark.parametrize("version_type, first", [("major", "1.0.0"), ("minor", "0.1.0"),
                                                 ("revision", "0.0.1")])
def test_first_version_by_type(algorithm, user, succeeded_build, version_type, first):
    assert publish(algorithm, user, version_type).semantic_version == first


def test_versions_bump_from_the_last_published(algorithm, user):
    seen = []
    for i, kind in enumerate(["minor", "revision", "revision", "minor", "major", "revision"]):
        fake_successful_build(algorithm, user, content=f"v{i}")
        seen.append(publish(algorithm, user, kind).semantic_version)
    assert seen == ["0.1.0", "0.1.1", "0.1.2", "0.2.0", "1.0.0", "1.0.1"]


def test_a_build_is_published_only_once(algorithm, user, succeeded_build):
    publish(algorithm, user)
    with pytest.raises(InputError, match="already published as 0.1.0"):
        publish(algorithm, user)
    assert AlgorithmVersion.objects.count() == 1


def test_only_the_newest_successful_build_is_published(algorithm, user):
    older = fake_successful_build(algorithm, user, content="old")
    newer = fake_successful_build(algorithm, user, content="new")
    Build.objects.create(algorithm=algorithm, bundle=newer.bundle, content_hash="f" * 64,
                         language="python3-1", status=Build.Status.FAILED)
    version = publish(algorithm, user)
    assert version.build == newer and version.build != older


def test_nothing_to_publish_without_a_successful_build(algorithm, user):
    with pytest.raises(InputError, match="no successful build"):
        publish(algorithm, user)


def test_the_royalty_is_frozen_at_publish(algorithm, user, succeeded_build):
    first = publish(algorithm, user, royalty_microcredits=5_000_000)
    services.algorithm_update(algorithm=algorithm, actor=user, royalty_microcredits=9_000_000)
    first.refresh_from_db()
    assert first.royalty_microcredits == 5_000_000
    fake_successful_build(algorithm, user, content="v2")
    assert publish(algorithm, user).royalty_microcredits == 9_000_000


def test_callability_changes_only_with_a_major_version(algorithm, user, succeeded_build):
    publish(algorithm, user)
    fake_successful_build(algorithm, user, content="v2")
    with pytest.raises(InputError, match="needs a major version"):
        publish(algorithm, user, "minor", callability="private")
    assert publish(algorithm, user, "major", callability="private").semantic_version == "1.0.0"


def test_published_versions_are_immutable(algorithm, user, succeeded_build):
    version = publish(algorithm, user)
    version.release_notes = "rewritten"
    with pytest.raises(ValueError):
        version.save()


def test_lifecycle_is_audited(user, succeeded_build, algorithm):
    services.algorithm_update(algorithm=algorithm, actor=user, tagline="New tagline")
    publish(algorithm, user, callability="private")
    services.algorithm_delete(algorithm=algorithm, actor=user)
    actions = list(AuditEvent.objects.filter(target_type="catalog.algorithm")
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["algorithm.create", "algorithm.source_upload", "algorithm.settings_change",
                       "algorithm.publish", "algorithm.delete"]
    assert not Algorithm.objects.exists()


def test_an_algorithm_with_a_public_version_cannot_be_deleted(algorithm, user, succeeded_build):
    publish(algorithm, user)
    with pytest.raises(InputError, match="cannot be deleted"):
        services.algorithm_delete(algorithm=algorithm, actor=user)
    assert Algorithm.objects.filter(pk=algorithm.pk).exists()


def test_only_members_create_in_an_organization(user):
    membership = MembershipFactory()
    with pytest.raises(PermissionDeniedError):
        services.algorithm_create(actor=user, owner=membership.organization.name, name="x")
    algo = services.algorithm_create(actor=membership.user, owner=membership.organization.name,
                                     name="x")
    assert algo.owner_org == membership.organization and algo.path.endswith("/x")


class TestResolution:
    @pytest.fixture
    def published(self, algorithm, user):
        versions = {}
        plan = [("minor", "public"), ("revision", "public"), ("minor", "public"),
                ("major", "private"), ("minor", "private")]
        for i, (kind, callability) in enumerate(plan):
            fake_successful_build(algorithm, user, content=f"r{i}")
            v = publish(algorithm, user, kind, callability=callability)
            versions[v.semantic_version] = v
        return versions  # 0.1.0 0.1.1 0.2.0 public; 1.0.0 1.1.0 private

    def resolve(self, user, spec, owner_user):
        return selectors.version_resolve(owner=owner_user.username, name="hello", spec=spec,
                                         user=user).version.semantic_version

    @pytest.mark.parametrize("spec, owner_sees, other_sees", [
        (None, "1.1.0", "0.2.0"), ("latest", "1.1.0", "0.2.0"), ("0.1", "0.1.1", "0.1.1"),
        ("0.1.*", "0.1.1", "0.1.1"), ("0.*", "0.2.0", "0.2.0"), ("0", "0.2.0", "0.2.0"),
        ("0.1.0", "0.1.0", "0.1.0"), ("1.*", "1.1.0", None), ("1.0.0", "1.0.0", None),
    ])
    def test_specs(self, published, user, spec, owner_sees, other_sees):
        assert self.resolve(user, spec, user) == owner_sees
        other = UserFactory()
        if other_sees is None:
            with pytest.raises(NotFoundError):
                self.resolve(other, spec, user)
        else:
            assert self.resolve(other, spec, user) == other_sees
            assert self.resolve(None, spec, user) == other_sees

    def test_a_build_hash_is_for_the_owner_only(self, published, user):
        build = published["1.0.0"].build
        resolved = selectors.version_resolve(owner=user.username, name="hello",
                                             spec=build.content_hash[:12], user=user)
        assert resolved.build == build
        with pytest.raises(NotFoundError):
            selectors.version_resolve(owner=user.username, name="hello",
                                      spec=build.content_hash[:12], user=UserFactory())

    @pytest.mark.parametrize("spec", ["v1!", " ", "\t", "9" * 5000, "1234567890.0.0"])
    def test_a_bad_spec_is_an_input_error(self, published, user, spec):
        """A blank version given is not "the latest" (only an absent one is)."""
        with pytest.raises(InputError):
            selectors.version_resolve(owner=user.username, name="hello", spec=spec, user=user)


def test_an_algorithm_without_public_versions_is_404_to_others(algorithm, user, succeeded_build):
    publish(algorithm, user, callability="private")
    other = UserFactory()
    with pytest.raises(NotFoundError):
        selectors.algorithm_get_visible(owner=user.username, name="hello", user=other)
    assert selectors.algorithm_get_visible(owner=user.username, name="HELLO", user=user) == algorithm


@pytest.mark.django_db(transaction=True)  # the live server reads what the test writes
def test_an_organizations_members_build_its_algorithms_but_only_owners_and_admins_delete(
        live_server, user, make_key):
    """A plain member could delete any of the organization's algorithms (and so lose its
    builds for good) while members' and settings' changes were owners' and admins' only."""
    import requests

    from marketplace import services as accounts
    from marketplace.models import Membership

    org = accounts.organization_create(actor=user, name="guild")
    member, admin = UserFactory(), UserFactory()
    accounts.membership_add(organization=org, actor=user, user=member)
    accounts.membership_add(organization=org, actor=user, user=admin, role="admin")
    assert Membership.objects.get(user=member, organization=org).role == "member"
    made = services.algorithm_create(actor=member, owner="guild", name="shared")  # may build
    url = f"{live_server.url}/v1/algorithms/guild/shared"
    refused = requests.delete(url, headers={"Authorization": make_key(member)}, timeout=30)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "Only the organization's owners and admins can delete its algorithms.")
    assert Algorithm.objects.filter(pk=made.pk).exists()
    with pytest.raises(PermissionDeniedError):
        services.algorithm_delete(algorithm=made, actor=member)
    deleted = requests.delete(url, headers={"Authorization": make_key(admin)}, timeout=30)
    assert deleted.status_code == 200 and not Algorithm.objects.filter(pk=made.pk).exists()
