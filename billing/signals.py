"""Every user and organization has a billing account from the moment it exists."""


def open_user_account(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:
        from billing.services import account_for_user

        account_for_user(instance)


def open_organization_account(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:
        from billing.services import account_for_organization

        account_for_organization(instance)
