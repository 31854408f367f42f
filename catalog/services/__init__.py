"""The catalog's write operations."""
from .algorithms import algorithm_create, algorithm_delete, algorithm_update
from .builds import build_start
from .sources import source_bundle_upload
from .versions import version_publish

__all__ = ["algorithm_create", "algorithm_delete", "algorithm_update", "build_start",
           "source_bundle_upload", "version_publish"]
