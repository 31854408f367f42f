"""The catalog's reads: visibility, version resolution (one service used everywhere), search."""
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.expressions import RawSQL

from catalog import semver
from catalog.models import Algorithm, AlgorithmVersion, Build
from marketplace.errors import NotFoundError, PermissionDeniedError
from marketplace.models import Membership, Organization, User


@dataclass(frozen=True)
class Namespace:
    name: str
    user: User | None = None
    organization: Organization | None = None


def namespace_for_owner(*, owner: str, user: User) -> Namespace:
    """The namespace ``owner`` if ``user`` may publish into it (themselves or their org)."""
    if owner.lower() == user.username.lower():
        return Namespace(name=user.username, user=user)
    org = Organization.objects.filter(name__iexact=owner, memberships__user=user).first()
    if org is None:
        raise PermissionDeniedError(f"You cannot create algorithms for '{owner}'.")
    return Namespace(name=org.name, organization=org)


def _member_orgs(user: User):
    return Membership.objects.filter(user=user).values("organization_id")


def _acting_for(user: User) -> int | None:
    """The organization an organization's API key acts for (``ApiKey.acting_user``): its
    creator then manages that organization's algorithms only, never their own."""
    return getattr(user, "acting_for_organization_id", None)


def _for_a_call(user: User) -> bool:
    """A derived key's user (``ApiKey.acting_user``): it reads and calls as anyone would."""
    return getattr(user, "acting_for_a_call", False)


def manageable_q(user: User | None) -> Q:
    if user is None or not user.is_authenticated or _for_a_call(user):
        return Q(pk__in=[])
    if _acting_for(user) is not None:
        return Q(owner_org_id__in=_member_orgs(user).filter(
            organization_id=_acting_for(user)))
    return Q(owner_user=user) | Q(owner_org_id__in=_member_orgs(user))


def can_manage(*, algorithm: Algorithm, user: User | None) -> bool:
    if user is None or not user.is_authenticated or _for_a_call(user):
        return False
    if algorithm.owner_user_id is not None:
        return algorithm.owner_user_id == user.pk and _acting_for(user) is None
    if _acting_for(user) not in (None, algorithm.owner_org_id):
        return False
    return Membership.objects.filter(organization_id=algorithm.owner_org_id, user=user).exists()


def _public_version_exists():
    return Exists(AlgorithmVersion.objects.filter(
        algorithm=OuterRef("pk"), callability=Algorithm.Callability.PUBLIC))


def algorithms_visible_to(*, user: User | None) -> QuerySet[Algorithm]:
    """Algorithms with a public version, plus everything the user manages."""
    return Algorithm.objects.annotate(has_public=_public_version_exists()).filter(
        Q(has_public=True) | manageable_q(user))


def algorithm_get_visible(*, owner: str, name: str, user: User | None) -> Algorithm:
    algorithm = algorithms_visible_to(user=user).filter(
        owner_name__iexact=owner, name__iexact=name).select_related("owner_org", "owner_user").first()
    if algorithm is None:
        raise NotFoundError(f"No such algorithm: {owner}/{name}.")
    return algorithm


def algorithm_get_manageable(*, owner: str, name: str, user: User) -> Algorithm:
    """The algorithm if ``user`` manages it; 404 if they cannot see it, 403 if they only can."""
    algorithm = algorithm_get_visible(owner=owner, name=name, user=user)
    if not can_manage(algorithm=algorithm, user=user):
        raise PermissionDeniedError("Only the algorithm's owner can do this.")
    return algorithm


def versions_visible(*, algorithm: Algorithm, user: User | None) -> QuerySet[AlgorithmVersion]:
    versions = algorithm.versions.select_related("build").order_by("-major", "-minor", "-patch")
    if can_manage(algorithm=algorithm, user=user):
        return versions
    return versions.filter(callability=Algorithm.Callability.PUBLIC)


@dataclass(frozen=True)
class Resolved:
    """What a call names: the algorithm, the published version (None for a build hash), the build."""

    algorithm: Algorithm
    version: AlgorithmVersion | None
    build: Build


def version_resolve(*, owner: str, name: str, spec: str | None, user: User | None) -> Resolved:
    """Resolve ``owner/name[/spec]`` for ``user``: exact, partial, latest, or a build hash.

    Partial and latest never reach a private version for someone who does not manage the
    algorithm; a build hash is for its managers only. Anything not visible is 404.
    """
    algorithm = algorithm_get_visible(owner=owner, name=name, user=user)
    wanted = semver.parse_spec(spec)
    if wanted.kind == "hash":
        if not can_manage(algorithm=algorithm, user=user):
            raise NotFoundError(f"No such version: {owner}/{name}/{spec}.")
        build = (algorithm.builds.filter(status=Build.Status.SUCCEEDED,
                                         content_hash__startswith=wanted.build_hash)
                 .order_by("-created_at").first())
        if build is None:
            raise NotFoundError(f"No successful build {spec} of {owner}/{name}.")
        return Resolved(algorithm, getattr(build, "version", None), build)
    versions = versions_visible(algorithm=algorithm, user=user)
    if wanted.kind == "exact":
        versions = versions.filter(major=wanted.major, minor=wanted.minor, patch=wanted.patch)
    elif wanted.kind == "partial":
        versions = versions.filter(major=wanted.major)
        if wanted.minor is not None:
            versions = versions.filter(minor=wanted.minor)
    version = versions.first()
    if version is None:
        raise NotFoundError(f"No published version {spec or 'latest'} of {owner}/{name}.")
    return Resolved(algorithm, version, version.build)


def version_resolve_for_call(*, owner: str, name: str, spec: str | None,
                             user: User) -> tuple[Resolved, bool]:
    """``version_resolve`` and ``can_manage`` for the invocation path, from the per-process
    resolution cache while the catalog has not changed (see catalog.resolution_cache)."""
    from catalog.resolution_cache import resolutions

    if semver.parse_spec(spec).kind == "hash":
        resolved = version_resolve(owner=owner, name=name, spec=spec, user=user)
        return resolved, can_manage(algorithm=resolved.algorithm, user=user)
    def resolve():
        resolved = version_resolve(owner=owner, name=name, spec=spec, user=user)
        return resolved, can_manage(algorithm=resolved.algorithm, user=user)

    return resolutions.get_or_set((owner.lower(), name.lower(), spec or "", user.pk,
                                   _acting_for(user), _for_a_call(user)), resolve)


def has_public_version(*, algorithm: Algorithm) -> bool:
    """Callers may depend on it: it cannot be deleted."""
    return algorithm.versions.filter(callability=Algorithm.Callability.PUBLIC).exists()


def latest_public_version(*, algorithm: Algorithm) -> AlgorithmVersion | None:
    return algorithm.versions.filter(callability=Algorithm.Callability.PUBLIC).order_by(
        "-major", "-minor", "-patch").first()


def builds_of(*, algorithm: Algorithm) -> QuerySet[Build]:
    return algorithm.builds.select_related("version").order_by("-created_at", "-id")


def builds_unpublished(*, algorithm: Algorithm) -> QuerySet[Build]:
    """Successful builds no version was published from, newest first."""
    return (algorithm.builds.filter(status=Build.Status.SUCCEEDED, version__isnull=True)
            .select_related("version").defer("logs").order_by("-created_at", "-id"))


def build_get(*, algorithm: Algorithm, build_id: str) -> Build:
    try:
        build = algorithm.builds.select_related("version").filter(build_id=build_id).first()
    except Exception:  # not a UUID
        build = None
    if build is None:
        raise NotFoundError(f"No build {build_id} of {algorithm.path}.")
    return build


# --- Discovery ---------------------------------------------------------------------------

SORTS = {"popular": "-calls_30d", "newest": "-created_at", "price": "price"}


def _latest_royalty(**filters) -> Subquery:
    return Subquery(AlgorithmVersion.objects.filter(algorithm=OuterRef("pk"), **filters)
                    .order_by("-major", "-minor", "-patch").values("royalty_microcredits")[:1])


def algorithms_for_user(*, user: User) -> QuerySet[Algorithm]:
    """The author's own and their organizations' algorithms, for the dashboard."""
    return Algorithm.objects.filter(manageable_q(user)).order_by("owner_name", "name")


def algorithm_search(*, query: str = "", category: str = "", tag: str = "",
                     sort: str = "", user: User | None = None) -> QuerySet[Algorithm]:
    """Browse and search what ``user`` may see.

    With a query: PostgreSQL full-text search over name (weight A), label and tagline (B)
    and docs (C), through the GIN-indexed ``search_vector`` column, ranked and then nudged
    by popularity; on SQLite, a substring match ranked the same way by field.
    """
    # The price is the newest public version's royalty, what a call costs (the algorithm's
    # own royalty is the next version's); for a manager's private algorithm, its newest's.
    algorithms = (algorithms_visible_to(user=user)
                  .filter(versions__isnull=False).distinct()
                  .annotate(price=Coalesce(
                      _latest_royalty(callability=Algorithm.Callability.PUBLIC),
                      _latest_royalty()))
                  .prefetch_related("categories", "tags"))
    if category:
        algorithms = algorithms.filter(categories__slug=category)
    if tag:
        algorithms = algorithms.filter(tags__name=tag.lower())
    query = query.strip()
    if query:
        algorithms = _text_search(algorithms, query)
        if sort not in SORTS:
            return algorithms.order_by("-rank", "-calls_30d", "name")
    return algorithms.order_by(SORTS.get(sort, "-calls_30d"), "owner_name", "name")


def _text_search(algorithms: QuerySet[Algorithm], query: str) -> QuerySet[Algorithm]:
    if connection.vendor == "postgresql":
        tsquery = "websearch_to_tsquery('english', %s)"
        return (algorithms
                .filter(pk__in=RawSQL(
                    f"SELECT id FROM catalog_algorithm WHERE search_vector @@ {tsquery}", [query]))
                .annotate(rank=RawSQL(
                    f"ts_rank(catalog_algorithm.search_vector, {tsquery}) "
                    "* (1 + ln(1 + catalog_algorithm.calls_30d) / 10)", [query])))
    # SQLite: every word must appear somewhere; rank by where it appears.
    from django.db.models import Case, IntegerField, Value, When

    words = query.split()
    for word in words:
        algorithms = algorithms.filter(Q(name__icontains=word) | Q(label__icontains=word)
                                       | Q(tagline__icontains=word) | Q(summary__icontains=word))
    score = Value(0)
    for word in words:
        score = score + Case(When(name__iexact=word, then=Value(8)),
                             When(name__icontains=word, then=Value(4)), default=Value(0),
                             output_field=IntegerField())
        score = score + Case(When(Q(label__icontains=word) | Q(tagline__icontains=word),
                                  then=Value(2)), default=Value(0), output_field=IntegerField())
        score = score + Case(When(summary__icontains=word, then=Value(1)), default=Value(0),
                             output_field=IntegerField())
    return algorithms.annotate(rank=score)
