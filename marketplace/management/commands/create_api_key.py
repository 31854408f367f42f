"""``python manage.py create_api_key USERNAME [--create-user] [--org ORG] [--scopes ...]``.

The new raw key is the last line printed, so scripts can take it with ``tail -n 1``.
"""
from django.core.management.base import BaseCommand, CommandError

from marketplace import selectors, services
from marketplace.errors import ApplicationError
from marketplace.models import Organization, User


class Command(BaseCommand):
    help = "Create an API key for a user (or an organization they administer) and print it."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true",
                            help="Create the user (with no password) if it does not exist.")
        parser.add_argument("--email", default="", help="Email for --create-user.")
        parser.add_argument("--org", help="Make the key for this organization; the user must "
                                          "be its owner or admin (with --create-user, an "
                                          "organization that does not exist is created).")
        parser.add_argument("--name", default="Command-line key")
        parser.add_argument("--scopes", nargs="+", metavar="SCOPE",
                            help="algo://… patterns, data:none|read|read-write, manage. "
                                 "Without it the key has every scope.")

    def handle(self, *args, username: str, create_user: bool, email: str, org: str | None,
               name: str, scopes: list[str] | None, **options):
        try:
            user = self._user(username, create_user, email)
            organization = self._organization(org, user, create_user) if org else None
            issued = services.api_key_create(
                created_by=user, name=name, organization=organization,
                scopes=services.parse_scopes(scopes) if scopes else None,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        owner = organization.name if organization else user.username
        self.stdout.write(f"Created {issued.key.masked} for {owner}. It is shown only once:")
        self.stdout.write(issued.raw)

    def _user(self, username: str, create: bool, email: str) -> User:
        user = User.objects.filter(username__iexact=username).first()
        if user is not None:
            return user
        if not create:
            raise CommandError(f"No user named '{username}' (add --create-user to create it).")
        try:
            user = services.user_create(username=username,
                                        email=email or f"{username}@localhost")
        except Exception as error:  # ValidationError: name taken, reserved or malformed
            raise CommandError(f"Cannot create user '{username}': {error}") from None
        self.stdout.write(f"Created user {user.username}.")
        return user

    def _organization(self, name: str, user: User, create: bool) -> Organization:
        org = Organization.objects.filter(name__iexact=name).first()
        if org is None and create:
            org = services.organization_create(actor=user, name=name)
            self.stdout.write(f"Created organization {org.name}.")
        if org is None or selectors.membership_get(organization=org, user=user) is None:
            raise CommandError(f"'{user.username}' is not a member of an organization '{name}'.")
        return org
