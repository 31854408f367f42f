"""Starting builds. The build itself runs on a worker (catalog/builder.py)."""
from django.db import transaction

from catalog.models import Algorithm, Build
from marketplace.dispatch import task_send
from marketplace.errors import InputError
from marketplace.models import User


@transaction.atomic
def build_start(*, algorithm: Algorithm, actor: User) -> Build:
    """Queue a build of the algorithm's current source on the ``builds`` queue."""
    bundle = algorithm.current_source
    if bundle is None:
        raise InputError("This algorithm has no source yet: upload a bundle "
                         f"(PUT /v1/algorithms/{algorithm.path}/source) first.")
    build = Build.objects.create(algorithm=algorithm, bundle=bundle,
                                 content_hash=bundle.content_hash, language=algorithm.language,
                                 requested_by=actor)
    task_send("catalog.build_run", args=[build.pk], queue="builds")
    return build
