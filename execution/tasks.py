"""Celery tasks of the execution tier (queue ``execution``)."""
from celery import shared_task
from celery.worker.request import Request


class InvokeRequest(Request):
    """Celery's request for a call (``execution.invoke`` and ``execution.invoke_early``),
    which tells the pool thread about to run it its broker message, so that the call's
    result acknowledges it in the same round trip
    (``execution.results.answering``)."""

    def on_accepted(self, pid, time_accepted):
        from execution import results

        results.accepted(self.message)  # in the thread that runs the task, just before it
        super().on_accepted(pid, time_accepted)


_RUN_A_CALL = {"bind": True, "acks_late": True, "reject_on_worker_lost": True,
               "Request": "execution.tasks:InvokeRequest"}


@shared_task(name="execution.invoke", **_RUN_A_CALL)
def invoke(self, invocation_pk: int, payload: dict, row: dict | None = None,
           request_id: str | None = None) -> dict | None:
    """Run one call. Redelivered after a worker died mid-call, it runs the call again unless
    it already finished, in which case the stored result is returned (a redelivered message
    never trusts the row it carries: the call is read back)."""
    return _run_call(self, invocation_pk, payload, row, request_id, early=False)


@shared_task(name="execution.invoke_early", **_RUN_A_CALL)
def invoke_early(self, invocation_pk: None, payload: dict, row: dict | None = None,
                 request_id: str | None = None) -> dict | None:
    """Run one call sent before its admission was written (``execution.early_dispatch``):
    nothing of it runs before the word that it was. A name of its own: a worker that does
    not know it refuses the message, where it would have run the call at once."""
    return _run_call(self, None, payload, row, request_id, early=True)


def _run_call(self, invocation_pk: int | None, payload: dict, row: dict | None,
              request_id: str | None, *, early: bool) -> dict | None:
    from catalog.resolution_cache import resolutions
    from catalog.services.secrets import environments
    from execution import results
    from execution.services import invocation_broke, invocation_run
    from marketplace.epoch_cache import epochs_read_once

    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    # The call's algorithm, build and secrets come from caches whose epochs are read once.
    # Its result goes to the inbox its caller named, and acknowledges this message.
    request_id = request_id or (row or {}).get("request_id")
    with epochs_read_once(resolutions, environments), results.answering(
            task_id=self.request.id, request_id=request_id,
            inbox=(row or {}).get("reply_to")):
        try:
            envelope = invocation_run(invocation_pk=invocation_pk, payload=payload,
                                      row=None if redelivered else row,
                                      request_id=request_id, early=early)
        except Exception as error:
            if self.request.is_eager:  # in-process: the caller's own request sees it
                raise
            # Its caller is answered now, not when its wait runs out (unless answered
            # already, before the close that failed).
            waits = row is not None and (row.get("options") or {}).get("output") != "void"
            envelope = invocation_broke(invocation_pk=invocation_pk, request_id=request_id,
                                        error=error, caller_waits=waits,
                                        answered=results.answered())
    # Sent by a caller that reads no task result (the envelope went to the result channel):
    # nothing to return, and Celery would make a repr of it for its log line on every call.
    return None if self.request.ignore_result else envelope


@shared_task(name="execution.close_broken", bind=True, max_retries=None)
def close_broken(self, invocation_pk: int | None, request_id: str | None,
                 error_message: str) -> str:
    """Close a call whose worker broke and could not close it (the database unreachable):
    tried again, every minute at most, until the database answers."""
    from execution.services import CLOSE_BROKEN_FIRST_SECONDS, invocation_close_broken

    try:
        return invocation_close_broken(invocation_pk=invocation_pk, request_id=request_id,
                                       error_message=error_message)
    except Exception as error:
        from marketplace.db_pool import drop_lost_connections

        drop_lost_connections(error)
        countdown = min(60, CLOSE_BROKEN_FIRST_SECONDS * 2 ** (self.request.retries + 1))
        raise self.retry(exc=error, countdown=countdown)


@shared_task(name="execution.deliver_webhook", bind=True, max_retries=None)
def deliver_webhook(self, delivery_pk: int) -> str:
    """Deliver a completion webhook; on failure, try again later with exponential backoff."""
    from django.conf import settings

    from execution import webhooks

    outcome = webhooks.deliver(delivery_pk)
    if outcome == "retry":
        if settings.CELERY_TASK_ALWAYS_EAGER:  # no broker to wait on: retry here, at once
            return deliver_webhook.run(delivery_pk)
        raise self.retry(countdown=webhooks.backoff_seconds(self.request.retries))
    return outcome


@shared_task(name="execution.reap_stuck")
def reap_stuck() -> int:
    from execution.services import invocation_reap_stuck

    return invocation_reap_stuck()


@shared_task(name="execution.scale_idle")
def scale_idle() -> int:
    """Kubernetes: scale versions idle past their time back to their reserved minimum."""
    from django.conf import settings

    if settings.EXECUTION_BACKEND != "kubernetes":
        return 0  # local runners retire by themselves
    from execution.backends import get_backend

    return len(get_backend().scale_idle())
