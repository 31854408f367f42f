"""Creating, changing and deleting algorithms."""
from django.db import transaction

from catalog.models import Algorithm, Category, Tag
from catalog.selectors import has_public_version, namespace_for_owner
from marketplace.errors import ConflictError, InputError, PermissionDeniedError
from marketplace.models import User
from marketplace.services import audit_record

LANGUAGE_ALIASES = {"python3": "python3-1", "python": "python3-1", "python3-1": "python3-1",
                    "javascript": "javascript", "nodejs": "javascript", "node": "javascript"}
SETTABLE = {"label", "tagline", "summary", "language", "license", "source_visibility",
            "callability", "royalty_microcredits", "network_access", "pipeline_enabled",
            "runner_idle_seconds", "min_warm_runners"}


def normalize_language(value: str) -> str:
    language = LANGUAGE_ALIASES.get((value or "").strip().lower())
    if language is None:
        raise InputError(f"Unknown language '{value}': use python3-1 (or python3) or javascript.")
    return language


def _apply(algorithm: Algorithm, fields: dict) -> list[str]:
    unknown = set(fields) - SETTABLE - {"categories", "tags"}
    if unknown:
        raise InputError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    changed = []
    for name, value in fields.items():
        if name in ("categories", "tags"):
            continue
        if name == "language":
            value = normalize_language(value)
        if getattr(algorithm, name) != value:
            setattr(algorithm, name, value)
            changed.append(name)
    if "summary" in changed:
        algorithm.summary_from_bundle = False  # the author wrote docs: the README stops winning
    return changed


def _set_taxonomy(algorithm: Algorithm, fields: dict) -> None:
    if "categories" in fields:
        slugs = list(fields["categories"] or [])
        categories = list(Category.objects.filter(slug__in=slugs))
        missing = set(slugs) - {c.slug for c in categories}
        if missing:
            raise InputError(f"Unknown categories: {', '.join(sorted(missing))}.")
        algorithm.categories.set(categories)
    if "tags" in fields:
        names = sorted({str(t).strip().lower() for t in fields["tags"] or [] if str(t).strip()})
        tags = [Tag.objects.get_or_create(name=name)[0] for name in names]
        algorithm.tags.set(tags)


@transaction.atomic
def algorithm_create(*, actor: User, owner: str, name: str, **fields) -> Algorithm:
    """Create ``owner/name``; ``owner`` is the actor or an organization they belong to."""
    namespace = namespace_for_owner(owner=owner, user=actor)
    if Algorithm.objects.filter(owner_name__iexact=namespace.name, name__iexact=name).exists():
        raise ConflictError(f"{namespace.name}/{name} already exists.")
    algorithm = Algorithm(owner_user=namespace.user, owner_org=namespace.organization,
                          owner_name=namespace.name, name=name, created_by=actor)
    _apply(algorithm, fields)
    algorithm.full_clean()
    algorithm.save()
    _set_taxonomy(algorithm, fields)
    audit_record(action="algorithm.create", actor=actor, target=algorithm,
                 organization=namespace.organization)
    return algorithm


@transaction.atomic
def algorithm_update(*, algorithm: Algorithm, actor: User, **fields) -> Algorithm:
    """Change an algorithm's details and settings (they apply to the next published version)."""
    changed = _apply(algorithm, fields)
    if "language" in changed and algorithm.versions.exists():
        raise InputError("The language of a published algorithm cannot change.")
    algorithm.full_clean()
    algorithm.save()
    _set_taxonomy(algorithm, fields)
    if changed or "categories" in fields or "tags" in fields:
        audit_record(action="algorithm.settings_change", actor=actor, target=algorithm,
                     organization=algorithm.owner_org,
                     data={"changed": sorted(set(changed) | (set(fields) & {"categories", "tags"}))})
    return algorithm


@transaction.atomic
def algorithm_delete(*, algorithm: Algorithm, actor: User) -> None:
    """Delete an algorithm that callers do not depend on (no public version). An
    organization's members build and publish its algorithms; deleting one, which cannot be
    undone, is for its owners and admins (as changing its members and settings is)."""
    from marketplace.selectors import administers_organization

    if algorithm.owner_org_id is not None and not administers_organization(
            user=actor, organization_id=algorithm.owner_org_id):
        raise PermissionDeniedError("Only the organization's owners and admins can delete "
                                    "its algorithms.")
    if has_public_version(algorithm=algorithm):
        raise InputError("An algorithm with a public version cannot be deleted: callers "
                         "depend on it.")
    audit_record(action="algorithm.delete", actor=actor, target=algorithm,
                 organization=algorithm.owner_org, data={"path": algorithm.path})
    algorithm.delete()


def algorithm_calls_refresh() -> int:
    """Each algorithm's ``calls_30d`` (popularity: the browse order and a nudge to search
    rank) counted again from the calls of the last 30 days, composed calls included.
    Written only where it changed. Returns how many changed. Run every few minutes (beat),
    and, embedded (no beat), when the catalog is browsed (``popularity_refresh_if_embedded``)."""
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from execution.models import Invocation

    since = timezone.now() - timedelta(days=30)
    counts = dict(Invocation.objects.filter(created_at__gte=since, algorithm__isnull=False)
                  .values_list("algorithm_id").annotate(calls=Count("id")).order_by())
    changed = 0
    for pk, current in Algorithm.objects.values_list("pk", "calls_30d"):
        if counts.get(pk, 0) != current:
            changed += Algorithm.objects.filter(pk=pk).update(calls_30d=counts.get(pk, 0))
    return changed


def popularity_refresh_if_embedded() -> None:
    """Embedded (Celery eager: no beat runs), popularity is counted again when the catalog
    is browsed (the page and the search API call this before reading), at most once a
    minute; with a broker, beat does it (``catalog.refresh_calls``)."""
    from django.conf import settings
    from django.core.cache import cache

    if settings.CELERY_TASK_ALWAYS_EAGER and cache.add("catalog:calls-refreshed", 1, 60):
        algorithm_calls_refresh()
