"""Billing's periodic tasks (queue ``billing``)."""
from celery import shared_task


@shared_task(name="billing.settle")
def settle() -> int:
    """Write finished calls into the ledger, in one batch (scheduled as calls finish)."""
    from billing.services import usage_settle_pending

    return usage_settle_pending()


@shared_task(name="billing.reconcile")
def reconcile() -> int:
    """Settle or release any hold whose call has finished (a safety net; normally none)."""
    from billing.services import usage_reconcile

    return usage_reconcile()
