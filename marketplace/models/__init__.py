from .accounts import Membership, Organization, User
from .api_keys import ApiKey
from .audit import AuditEvent

__all__ = ["ApiKey", "AuditEvent", "Membership", "Organization", "User"]
