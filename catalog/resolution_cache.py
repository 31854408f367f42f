"""Version resolution for the invocation path, remembered per process (see
marketplace.epoch_cache): resolving ``owner/name/spec`` for a caller is four ORM queries, a
quarter of the web tier's time per call under load, and changes only when the catalog or a
membership does. Build-hash calls (owners testing unpublished builds) are never cached."""
from marketplace.epoch_cache import EpochCache

resolutions = EpochCache("catalog", ttl_seconds=30.0)
