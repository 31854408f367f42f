"""Demo data for ``make run``: a demo account and a fresh demo key printed on every run."""
from django.core.management.base import BaseCommand
from django.db import transaction

from marketplace import services
from marketplace.models import ApiKey, User

DEMO_USERNAME = "demo"
DEMO_KEY_NAME = "Demo key (make run)"


class Command(BaseCommand):
    help = "Create the demo account (idempotent) and print a new demo API key."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo-password-123",
                            help="Password of the demo user (only set when it is created).")

    @transaction.atomic
    def handle(self, *args, password: str, **options):
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user, _ = services.user_signup(username=DEMO_USERNAME, email="demo@localhost",
                                           password=password)
            self.stdout.write(f"Created user '{DEMO_USERNAME}' with password '{password}'.")
        # Raw keys are never stored, so each run replaces the previous demo key.
        for key in ApiKey.objects.filter(user=user, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            services.api_key_revoke(key=key, actor=user)
        issued = services.api_key_create(created_by=user, name=DEMO_KEY_NAME)
        for hook in _demo_hooks():
            hook(user=user, stdout=self.stdout)
        self.stdout.write(f"Demo API key for '{DEMO_USERNAME}':")
        self.stdout.write(issued.raw)


def _demo_hooks():
    """Each app's demo data, called with the demo user."""
    from catalog.demo import seed_demo_algorithms

    return [seed_demo_algorithms]
