from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing: credits and the ledger"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from marketplace.models import Organization, User

        from . import signals

        post_save.connect(signals.open_user_account, sender=User,
                          dispatch_uid="billing-open-user-account")
        post_save.connect(signals.open_organization_account, sender=Organization,
                          dispatch_uid="billing-open-organization-account")
