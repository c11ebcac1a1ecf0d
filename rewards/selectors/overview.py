"""Reads of the books as a whole: the staff overview, every epoch, and insights' daily rows.

What the rewards admin page shows (system balances, pending fees, the latest epochs, open reconciliation
issues), the per-day rows insights' summaries are built from (settlements, contributors' earnings, claims)
and every epoch with what it froze, funded and saw claimed.
"""

from collections import defaultdict

from django.conf import settings

from .. import ledger
from ..models import (
    AccountKind,
    ChainClaim,
    Epoch,
    PendingFee,
    ReconciliationIssue,
    SettlementShare,
    ShareRole,
)


def admin_overview() -> dict:
    system = ledger.system_balances()
    pending = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.PENDING))
    paid = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.PAID_OUT))
    accruing = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(
        account__kind__in=[AccountKind.EARNINGS, AccountKind.OWNER_EARNINGS]))
    credit = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.CREDIT))
    fees_pending = ledger.sum_amounts(PendingFee.objects.all(), "fee")
    figures = {"treasury": system["treasury"], "deposits": -system["deposits"], "grants": -system["grants"],
               "credit": credit, "accruing": accruing, "pending": pending, "paid_out": paid,
               "fees_pending": fees_pending}
    return {
        "figures": figures,
        "figures_open": {k: ledger.format_open(v) for k, v in figures.items()},
        "epochs": list(Epoch.objects.select_related("deployment")[:20]),
        "issues": list(ReconciliationIssue.objects.filter(resolved_at__isnull=True)[:50]),
        "relay_threshold": settings.REWARDS_RELAY_THRESHOLD,
        "fees_pending_count": PendingFee.objects.count(),
    }


# --- Reads for insights' daily summaries, for [start, end) datetimes. Amounts are exact int base units,
# summed in Python (on SQLite the column is text: see `rewards.fields`).

def settlement_daily_totals(*, start, end) -> list[dict]:
    """Per (UTC day, model version hash): settled answers, fees and their split."""
    from ..models import Settlement

    totals: dict = {}
    rows = (Settlement.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
            .values_list("created_at", "model_version_hash", "fee", "contributors_amount", "owner_amount",
                         "protocol_amount").iterator(chunk_size=5000))
    for created, model_hash, fee, contributors, owner, protocol in rows:
        entry = totals.setdefault((created.date(), model_hash), {
            "day": created.date(), "model_version_hash": model_hash, "settlements": 0, "fee": 0,
            "contributors": 0, "owner": 0, "protocol": 0})
        entry["settlements"] += 1
        entry["fee"] += int(fee)
        entry["contributors"] += int(contributors)
        entry["owner"] += int(owner)
        entry["protocol"] += int(protocol)
    return list(totals.values())


def contributor_earnings_daily(*, start, end) -> list[dict]:
    """Per (UTC day, user id): what contributors earned from answers settled in [start, end)."""
    totals: dict = defaultdict(int)
    rows = (SettlementShare.objects.filter(role=ShareRole.CONTRIBUTOR, settlement__created_at__gte=start,
                                           settlement__created_at__lt=end).order_by()
            .values_list("settlement__created_at", "user_id", "amount").iterator(chunk_size=5000))
    for created, user_id, amount in rows:
        totals[(created.date(), user_id)] += int(amount)
    return [{"day": day, "user_id": user_id, "amount": amount} for (day, user_id), amount in totals.items()]


def claims_daily_totals(*, start, end) -> list[dict]:
    """Per UTC day: OPEN claimed on chain (claims booked in the ledger) in [start, end)."""
    totals: dict = defaultdict(int)
    rows = (ChainClaim.objects.filter(created_at__gte=start, created_at__lt=end, transaction__isnull=False)
            .order_by().values_list("created_at", "amount"))
    for created, amount in rows:
        totals[created.date()] += int(amount)
    return [{"day": day, "amount": amount} for day, amount in totals.items()]


def epochs_overview() -> list[dict]:
    """Every epoch, oldest first: what it froze (accrued), funded, its recipients, and what was claimed on
    chain between its freeze and the next epoch's."""
    from django.db.models import Count

    from ..models import PayoutAllocation

    epochs = list(Epoch.objects.order_by("frozen_at", "number"))
    recipients = dict(PayoutAllocation.objects.values_list("epoch_id").annotate(n=Count("id"))
                      .values_list("epoch_id", "n"))
    claims = list(ChainClaim.objects.filter(transaction__isnull=False).values_list("created_at", "amount"))
    overview = []
    for position, epoch in enumerate(epochs):
        until = epochs[position + 1].frozen_at if position + 1 < len(epochs) else None
        claimed = sum(int(amount) for created, amount in claims
                      if created >= epoch.frozen_at and (until is None or created < until))
        overview.append({
            "number": epoch.number, "state": epoch.state, "frozen_at": epoch.frozen_at, "closed_at": epoch.closed_at,
            "accrued": int(epoch.increase), "funded": int(epoch.funded_amount), "claimed": claimed,
            "recipients": recipients.get(epoch.pk, 0),
        })
    return overview
