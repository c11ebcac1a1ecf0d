from django.core.management.base import BaseCommand, CommandError

from rewards.ledger import format_open, ledger_check


class Command(BaseCommand):
    help = "Prove the OPEN ledger balances (exit status 1 and the problems when it does not)."

    def handle(self, *args, **options):
        result = ledger_check()
        for kind, total in sorted(result.totals.items()):
            self.stdout.write(f"  {kind:<16} {format_open(total):>32} OPEN")
        if not result.ok:
            for problem in result.problems:
                self.stderr.write(problem)
            raise CommandError(f"ledger check failed: {len(result.problems)} problem(s)")
        self.stdout.write(self.style.SUCCESS(
            f"The books balance: {result.transactions} transactions, {result.entries} entries sum to zero."))
