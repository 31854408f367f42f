from .ledger import Account, Entry, LedgerTransaction
from .payments import CreditPurchase, StripeEvent
from .usage import KeySpend, UsageRecord

__all__ = ["Account", "CreditPurchase", "Entry", "KeySpend", "LedgerTransaction",
           "StripeEvent", "UsageRecord"]
