"""Reads for rewards: earnings, claims with proofs, the fee policy and the admin overview."""

from collections import defaultdict

from django.conf import settings

from . import ledger
from .models import (
    AccountKind,
    ChainClaim,
    Epoch,
    EpochState,
    FeePolicyVersion,
    PayoutLeaf,
    ReconciliationIssue,
    SettlementShare,
    ShareRole,
    Wallet,
)

POSTED = (EpochState.ROOT_POSTED, EpochState.RELAYED, EpochState.CLOSED)


def fee_policy_public() -> dict:
    from .services import fee_policy_current

    current = fee_policy_current()
    return {
        "version": current.version,
        "protocol_bps": current.protocol_bps,
        "owner_bps": current.owner_bps,
        "contributors_bps": current.contributors_bps,
        "fallback": current.fallback,
        "rounding": "largest remainder: every base unit is assigned",
        "history": [
            {"version": v.version, "protocol_bps": v.protocol_bps, "owner_bps": v.owner_bps,
             "contributors_bps": v.contributors_bps, "fallback": v.fallback, "created_at": v.created_at.isoformat()}
            for v in FeePolicyVersion.objects.order_by("-version")[:50]
        ],
    }


def wallet_state(*, user, now=None) -> dict:
    from django.utils import timezone

    now = now or timezone.now()
    wallets = list(Wallet.objects.filter(user=user).order_by("-effective_at"))
    current = next((w for w in wallets if w.effective_at <= now), None)
    pending = next((w for w in wallets if w.effective_at > now), None)
    return {"current": current, "pending": pending, "all": wallets}


def _booked_by_address(addresses) -> dict[str, int]:
    return ledger.grouped_sums(ChainClaim.objects.filter(address__in=list(addresses), transaction__isnull=False),
                               "address")


def claims_for(*, user) -> list[dict]:
    """Per address of the user: the latest posted leaf (cumulative amount + proof) and what is left."""
    leaves = {}
    for leaf in (PayoutLeaf.objects.filter(user=user, epoch__state__in=POSTED)
                 .select_related("epoch", "epoch__deployment").order_by("epoch__number")):
        leaves[leaf.address] = leaf  # the latest epoch wins
    booked = _booked_by_address(leaves)
    claims = []
    for address, leaf in leaves.items():
        deployment = leaf.epoch.deployment
        claimed = booked.get(address, 0)
        claims.append({
            "address": address, "epoch": leaf.epoch.number, "deployment_id": deployment.pk,
            "cumulative_amount": leaf.cumulative_amount, "claimed": claimed,
            "claimable": max(0, leaf.cumulative_amount - claimed), "proof": leaf.proof,
            "distributor": deployment.distributor_address, "token": deployment.token_address,
            "chain_id": deployment.chain_id, "root": leaf.epoch.root,
        })
    return claims


def _share_status(share, cumulative_by_epoch_address, booked) -> str:
    epoch = share.epoch
    if epoch is None:
        return "accruing"
    if epoch.state not in POSTED:
        return f"epoch {epoch.number}: publishing"
    key = (epoch.pk, share.user_id)
    address, cumulative = cumulative_by_epoch_address.get(key, ("", 0))
    return "paid" if address and booked.get(address, 0) >= cumulative else "claimable"


def credit_balance(*, user) -> int:
    """The user's spendable OPEN credit, in base units (what an inference is paid from)."""
    return ledger.balance(kind=AccountKind.CREDIT, user=user)


def earnings_for(*, user, limit: int = 200) -> dict:
    """Totals, per-inference rows (what, from which rows, which epoch, claim status) and per-model sums."""
    shares = list(SettlementShare.objects.filter(user=user)
                  .select_related("settlement", "epoch").order_by("-settlement__created_at", "-id")[:limit])
    leaves = PayoutLeaf.objects.filter(user=user).values_list("epoch_id", "user_id", "address", "cumulative_amount")
    cumulative = {(e, u): (a, c) for e, u, a, c in leaves}
    booked = _booked_by_address({a for a, _ in cumulative.values()})
    items = [{
        "inference_id": s.settlement.inference_id, "model_version_hash": s.settlement.model_version_hash,
        "receipt_id": s.settlement.receipt_id, "role": s.role, "ppm": s.ppm, "amount": s.amount,
        "amount_open": ledger.format_open(s.amount), "rows": s.rows, "created_at": s.settlement.created_at,
        "epoch": s.epoch.number if s.epoch else None, "status": _share_status(s, cumulative, booked),
    } for s in shares]
    all_shares = SettlementShare.objects.filter(user=user)
    by_model = ledger.grouped_sums(all_shares.filter(role=ShareRole.CONTRIBUTOR), "settlement__model_version_hash")
    owner_revenue = ledger.grouped_sums(all_shares.filter(role=ShareRole.OWNER), "settlement__model_version_hash")
    totals = {
        "earned": ledger.sum_amounts(all_shares),
        "accruing": ledger.balance(kind=AccountKind.EARNINGS, user=user)
        + ledger.balance(kind=AccountKind.OWNER_EARNINGS, user=user),
        "pending": ledger.balance(kind=AccountKind.PENDING, user=user),
        "paid_out": ledger.balance(kind=AccountKind.PAID_OUT, user=user),
        "credit": ledger.balance(kind=AccountKind.CREDIT, user=user),
    }
    return {
        "totals": totals,
        "totals_open": {k: ledger.format_open(v) for k, v in totals.items()},
        "items": items,
        "by_model": [{"model_version_hash": m, "amount": a, "amount_open": ledger.format_open(a)}
                     for m, a in sorted(by_model.items(), key=lambda kv: -kv[1])],
        "owner_revenue": [{"model_version_hash": m, "amount": a, "amount_open": ledger.format_open(a)}
                          for m, a in sorted(owner_revenue.items(), key=lambda kv: -kv[1])],
    }


def earnings_series(*, user, days: int = 60) -> list[tuple]:
    """[(date, base units earned that day)] for the chart, oldest first."""
    totals: dict = defaultdict(int)
    for created, amount in SettlementShare.objects.filter(user=user).values_list("settlement__created_at", "amount"):
        totals[created.date()] += int(amount)
    return sorted(totals.items())[-days:]


def admin_overview() -> dict:
    system = ledger.system_balances()
    pending = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.PENDING))
    paid = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.PAID_OUT))
    accruing = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(
        account__kind__in=[AccountKind.EARNINGS, AccountKind.OWNER_EARNINGS]))
    credit = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.CREDIT))
    figures = {"treasury": system["treasury"], "deposits": -system["deposits"], "grants": -system["grants"],
               "credit": credit, "accruing": accruing, "pending": pending, "paid_out": paid}
    return {
        "figures": figures,
        "figures_open": {k: ledger.format_open(v) for k, v in figures.items()},
        "epochs": list(Epoch.objects.select_related("deployment")[:20]),
        "issues": list(ReconciliationIssue.objects.filter(resolved_at__isnull=True)[:50]),
        "relay_threshold": settings.REWARDS_RELAY_THRESHOLD,
    }
