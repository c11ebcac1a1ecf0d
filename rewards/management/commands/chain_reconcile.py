from django.core.management.base import BaseCommand, CommandError

from lineage import hooks
from rewards.services import chain_reconcile


class Command(BaseCommand):
    help = ("Compare the database with the chain (roots, funding, claims; with governance: votes, stakes, slashes, "
            "booked slashes released from their pool, and the fee split); report disagreements, never patch.")

    def handle(self, *args, **options):
        issues = chain_reconcile()
        for reconcile in hooks.chain_reconcilers.callbacks():  # governance's, when installed (governance/apps.py)
            issues += reconcile()
        for issue in issues:
            self.stderr.write(f"{issue.kind}: {issue.detail}")
        if issues:
            raise CommandError(f"{len(issues)} open reconciliation issue(s); see /rewards/admin/")
        self.stdout.write(self.style.SUCCESS("The database and the chain agree."))
