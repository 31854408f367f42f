"""Users and organizations that existed before billing get their accounts (users with the
sign-up credits, as if they had signed up now), so nothing opens them on a call's hot path."""
from django.conf import settings
from django.db import migrations

GRANT_KIND = "platform-grants"


def open_accounts(apps, schema_editor):
    Account = apps.get_model("billing", "Account")
    LedgerTransaction = apps.get_model("billing", "LedgerTransaction")
    Entry = apps.get_model("billing", "Entry")
    User = apps.get_model("marketplace", "User")
    Organization = apps.get_model("marketplace", "Organization")
    grant = settings.BILLING_SIGNUP_GRANT
    grants, _ = Account.objects.get_or_create(kind=GRANT_KIND)
    for user in User.objects.filter(billing_account__isnull=True):
        account = Account.objects.create(kind="user", user=user, holder_name=user.username)
        if grant:
            posted = LedgerTransaction.objects.create(kind="grant",
                                                      memo="Free credits on sign-up")
            Entry.objects.create(transaction=posted, account=grants, amount=-grant,
                                 kind="debit")
            Entry.objects.create(transaction=posted, account=account, amount=grant,
                                 kind="credit")
            Account.objects.filter(pk=account.pk).update(balance=grant)
            grants.balance -= grant
    Account.objects.filter(pk=grants.pk).update(balance=grants.balance)
    for organization in Organization.objects.filter(billing_account__isnull=True):
        Account.objects.create(kind="organization", organization=organization,
                               holder_name=organization.name)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial"), ("marketplace", "0003_apikey_monthly_spend_cap")]

    operations = [migrations.RunPython(open_accounts, migrations.RunPython.noop)]
