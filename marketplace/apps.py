from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import signals  # noqa: F401  (connects the sign-in audit receivers)
        from .models import ApiKey, Membership, Organization, User
        from .services.api_keys import authenticated_keys

        # What authenticating a key depends on: the key, its user, its organization and the
        # creator's membership in it. Any change: every process forgets its cached keys.
        for model in (ApiKey, User, Organization, Membership):
            for signal in (post_save, post_delete):
                receiver = (_bump_unless_new_key if (model, signal) == (ApiKey, post_save)
                            else authenticated_keys.bump_on_commit)
                signal.connect(receiver, sender=model,
                               dispatch_uid=f"key-cache-{signal}-{model.__name__}")
        _cache_redis_version()
        from .log_filters import install

        install()  # no keys or call results in uvicorn's and Celery's log lines


def _bump_unless_new_key(sender, instance, created: bool = False, **kwargs) -> None:
    """A key just made changes no cached answer (none can exist for it): every other save
    of a key does."""
    if created:
        return
    from .services.api_keys import authenticated_keys

    authenticated_keys.bump_on_commit()


def _cache_redis_version() -> None:
    """redis-py looks its own version up in the installed packages' metadata for every new
    connection (a scan of sys.path); profiles of the worker under load showed a tenth of its
    time there. The version does not change while the process runs."""
    import functools

    import redis.utils

    if not hasattr(redis.utils.get_lib_version, "cache_info"):
        redis.utils.get_lib_version = functools.lru_cache(maxsize=1)(redis.utils.get_lib_version)
