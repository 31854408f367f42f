"""Billing's periodic tasks (queue ``billing``)."""
from celery import shared_task


@shared_task(name="billing.settle", ignore_result=True)
def settle() -> int:
    """Write finished calls into the ledger, in one batch (scheduled as calls finish). Its
    count is for the worker's log: nobody reads it back, and the result backend kept one
    key a day for each of the several runs a second under load."""
    from billing.services import usage_settle_pending

    return usage_settle_pending()


@shared_task(name="billing.reconcile")
def reconcile() -> int:
    """Settle or release any hold whose call has finished (a safety net; normally none)."""
    from billing.services import usage_reconcile

    return usage_reconcile()
