"""The site shell's write operations. Other apps import from here, never from views."""
from .accounts import (
    membership_add,
    membership_remove,
    membership_set_role,
    organization_create,
    organization_update,
    user_create,
    user_signup,
)
from .api_keys import (
    IssuedKey,
    KeyScopes,
    api_key_authenticate,
    api_key_can_administer,
    api_key_create,
    api_key_create_derived,
    api_key_create_from_key,
    api_key_retire,
    api_key_retiring,
    api_key_set_spend_cap,
    api_key_revoke,
    parse_scopes,
    webhook_secret,
)
from .audit import audit_record

__all__ = [
    "IssuedKey", "KeyScopes", "api_key_authenticate", "api_key_can_administer", "api_key_create",
    "api_key_create_derived", "api_key_create_from_key", "api_key_retire", "api_key_retiring",
    "api_key_set_spend_cap", "api_key_revoke", "audit_record", "membership_add",
    "membership_remove", "membership_set_role", "organization_create", "organization_update",
    "parse_scopes", "user_create", "user_signup", "webhook_secret",
]
