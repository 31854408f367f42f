"""Setting algorithm secrets. Values are encrypted before they reach the database and are
never returned by any API; only the algorithm's own runners see them, as environment
variables."""
import hashlib
import re

from django.db import transaction

from catalog.models import Algorithm, AlgorithmSecret
from catalog.models.secrets import ENV_NAME
from marketplace.crypto import decrypt, encrypt
from marketplace.epoch_cache import EpochCache
from marketplace.errors import InputError
from marketplace.models import User
from marketplace.services import audit_record

RESERVED_ENV = {"PATH", "HOME", "LANG", "TMPDIR", "PWD", "PYTHONPATH", "PYTHONUNBUFFERED",
                "PYTHONDONTWRITEBYTECODE", "ALGORITHMIA_API", "ALGORITHMIA_API_KEY",
                "ALGOSTORE_API_SOCKET", "ALGOSTORE_API_PORT", "LD_PRELOAD", "LD_LIBRARY_PATH"}


@transaction.atomic
def secret_set(*, algorithm: Algorithm, actor: User, short_name: str, secret_key: str,
               secret_value: str, description: str = "") -> AlgorithmSecret:
    """Create or replace one secret (by its environment variable name)."""
    if not re.match(ENV_NAME, secret_key or ""):
        raise InputError("secret_key must be an environment variable name: A-Z, 0-9, _.")
    if secret_key in RESERVED_ENV:
        raise InputError(f"{secret_key} is set by the platform and cannot be a secret.")
    if not secret_value or len(secret_value) > 16_384:
        raise InputError("secret_value must be 1 to 16384 characters.")
    secret, _ = AlgorithmSecret.objects.update_or_create(
        algorithm=algorithm, secret_key=secret_key,
        defaults={"short_name": short_name[:64] or secret_key, "description": description[:300],
                  "encrypted_value": encrypt(secret_value)})
    audit_record(action="algorithm.secret_set", actor=actor, target=algorithm,
                 organization=algorithm.owner_org, data={"secret_key": secret_key})
    return secret


# Read on every call by the worker: remembered per process until a secret changes
# (AlgorithmSecret's signals bump the epoch; see marketplace.epoch_cache).
environments = EpochCache("secrets", ttl_seconds=60.0)


def secrets_environment(*, algorithm: Algorithm) -> tuple[dict[str, str], str]:
    """The decrypted environment for the algorithm's runners, and a fingerprint that changes
    whenever a secret does (runners started with old values are then not reused)."""
    env, stamp = environments.get_or_set(algorithm.pk, lambda: _secrets_environment(algorithm))
    return dict(env), stamp


def _secrets_environment(algorithm: Algorithm) -> tuple[dict[str, str], str]:
    env, stamp = {}, hashlib.sha256()
    for secret in algorithm.secrets.all():
        env[secret.secret_key] = decrypt(secret.encrypted_value)
        stamp.update(f"{secret.secret_key}:{secret.updated_at.isoformat()}\n".encode())
    return env, (stamp.hexdigest()[:8] if env else "")
