"""Celery tasks of the execution tier (queue ``execution``)."""
from celery import shared_task


@shared_task(name="execution.invoke", acks_late=True, reject_on_worker_lost=True)
def invoke(invocation_pk: int, payload: dict) -> dict:
    """Run one call. Redelivered after a worker died mid-call, it runs the call again unless
    it already finished, in which case the stored result is returned."""
    from execution.services import invocation_run

    return invocation_run(invocation_pk=invocation_pk, payload=payload)
