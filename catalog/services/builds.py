"""Starting builds. The build itself runs on a worker (catalog/builder.py)."""
from django.conf import settings
from django.db import transaction

from catalog.models import Algorithm, Build
from marketplace.dispatch import run_in_background, task_send
from marketplace.errors import InputError
from marketplace.models import User


def build_create(*, algorithm: Algorithm, actor: User | None) -> Build:
    """Record a build of the algorithm's current source (in progress, not yet run)."""
    bundle = algorithm.current_source
    if bundle is None:
        raise InputError("This algorithm has no source yet: upload a bundle "
                         f"(PUT /v1/algorithms/{algorithm.path}/source) first.")
    return Build.objects.create(algorithm=algorithm, bundle=bundle,
                                content_hash=bundle.content_hash, language=algorithm.language,
                                requested_by=actor)


@transaction.atomic
def build_start(*, algorithm: Algorithm, actor: User) -> Build:
    """Queue a build of the algorithm's current source on the ``builds`` queue (embedded,
    with EMBEDDED_BUILDS_IN_BACKGROUND, on a thread of this process)."""
    build = build_create(algorithm=algorithm, actor=actor)
    if settings.CELERY_TASK_ALWAYS_EAGER and settings.EMBEDDED_BUILDS_IN_BACKGROUND:
        run_in_background("catalog.build_run", args=[build.pk], pool="builds")
    else:
        task_send("catalog.build_run", args=[build.pk], queue="builds")
    return build
