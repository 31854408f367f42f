"""Celery tasks of the catalog (queue ``builds``)."""
from celery import shared_task


@shared_task(name="catalog.build_run", acks_late=True)
def build_run(build_pk: int) -> str:
    from catalog.builder import build_run as run

    return run(build_pk)


@shared_task(name="catalog.refresh_calls", ignore_result=True)
def refresh_calls() -> int:
    from catalog.services.algorithms import algorithm_calls_refresh

    return algorithm_calls_refresh()
