"""The catalog's write operations."""
from .algorithms import (algorithm_create, algorithm_delete, algorithm_update,
                         popularity_refresh_if_embedded)
from .builds import build_create, build_start
from .secrets import secret_set, secrets_environment
from .sources import source_bundle_upload
from .versions import version_publish

__all__ = ["algorithm_create", "algorithm_delete", "algorithm_update", "build_create",
           "popularity_refresh_if_embedded", "build_start", "secret_set", "secrets_environment",
           "source_bundle_upload", "version_publish"]
