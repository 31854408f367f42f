"""Billing's write operations. Other apps import from here, never from views."""
from .ledger import (
    account_for_key,
    account_for_organization,
    account_for_user,
    adjustment_create,
    ledger_post,
    platform_account,
)
from .payments import checkout_create, stripe_event_handle
from .usage import (
    key_spend_recount,
    max_cost,
    usage_refund_tree,
    usage_reconcile,
    usage_finish,
    usage_hold_of,
    usage_hold_spares_next_call,
    usage_reserve,
    usage_settle_pending,
)

__all__ = [
    "account_for_key", "account_for_organization", "account_for_user",
    "adjustment_create", "checkout_create", "key_spend_recount", "ledger_post", "max_cost",
    "platform_account",
    "stripe_event_handle", "usage_finish", "usage_hold_of",
    "usage_hold_spares_next_call", "usage_refund_tree", "usage_reconcile", "usage_reserve",
    "usage_settle_pending",
]
