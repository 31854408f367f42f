from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the sign-in audit receivers)
