from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the sign-in audit receivers)

        _cache_redis_version()


def _cache_redis_version() -> None:
    """redis-py looks its own version up in the installed packages' metadata for every new
    connection (a scan of sys.path); profiles of the worker under load showed a tenth of its
    time there. The version does not change while the process runs."""
    import functools

    import redis.utils

    if not hasattr(redis.utils.get_lib_version, "cache_info"):
        redis.utils.get_lib_version = functools.lru_cache(maxsize=1)(redis.utils.get_lib_version)
