"""``python manage.py check_ledger``: prove the books are sound; exit 1 when they are not."""
from django.core.management.base import BaseCommand, CommandError

from billing.selectors import ledger_problems


class Command(BaseCommand):
    help = ("Check that every ledger transaction balances, every balance equals the sum of its "
            "entries, holds match running calls, and every successful call is billed once.")

    def handle(self, *args, **options):
        problems = ledger_problems()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(problems)} problem(s) in the ledger.")
        self.stdout.write("The ledger is sound.")
