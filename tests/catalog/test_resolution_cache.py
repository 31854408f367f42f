"""The invocation path's resolution cache never serves an answer the catalog has changed."""
import pytest

from catalog import selectors, services
from catalog.resolution_cache import resolutions
from marketplace import services as marketplace_services
from marketplace.errors import NotFoundError
from tests.catalog.conftest import fake_successful_build
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _publish(algorithm, owner, version_type="minor", callability="public"):
    fake_successful_build(algorithm, owner, content=str(algorithm.versions.count()))
    return services.version_publish(algorithm=algorithm, actor=owner, version_type=version_type,
                                    callability=callability)


def test_a_new_version_is_resolved_at_once(user):
    caller = UserFactory()
    algorithm = services.algorithm_create(actor=user, owner=user.username, name="cached")
    _publish(algorithm, user)
    resolved, manages = selectors.version_resolve_for_call(owner=user.username, name="cached",
                                                           spec=None, user=caller)
    assert (resolved.version.semantic_version, manages) == ("0.1.0", False)
    epoch = resolutions.epoch()
    assert selectors.version_resolve_for_call(owner=user.username, name="cached", spec=None,
                                              user=caller)[0] is resolved  # from the cache
    _publish(algorithm, user)
    assert resolutions.epoch() > epoch
    resolved, _ = selectors.version_resolve_for_call(owner=user.username, name="cached",
                                                     spec=None, user=caller)
    assert resolved.version.semantic_version == "0.2.0"


def test_a_deleted_algorithm_is_404_at_once(user):
    algorithm = services.algorithm_create(actor=user, owner=user.username, name="gone")
    _publish(algorithm, user)
    selectors.version_resolve_for_call(owner=user.username, name="gone", spec="0.1.0", user=user)
    algorithm.delete()
    with pytest.raises(NotFoundError):
        selectors.version_resolve_for_call(owner=user.username, name="gone", spec="0.1.0",
                                           user=user)


def test_leaving_an_organization_ends_managing_its_private_algorithm(user):
    member = UserFactory()
    org = marketplace_services.organization_create(actor=user, name="cachers")
    marketplace_services.membership_add(organization=org, actor=user, user=member)
    algorithm = services.algorithm_create(actor=user, owner="cachers", name="inside")
    _publish(algorithm, user, callability="private")
    resolved, manages = selectors.version_resolve_for_call(owner="cachers", name="inside",
                                                           spec=None, user=member)
    assert manages and resolved.version.callability == "private"
    marketplace_services.membership_remove(organization=org, actor=user,
                                           user=member)
    with pytest.raises(NotFoundError):  # a private algorithm of someone else: 404
        selectors.version_resolve_for_call(owner="cachers", name="inside", spec=None,
                                           user=member)
