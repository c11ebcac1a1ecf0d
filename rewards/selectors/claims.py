"""Reads of what a user can claim on chain, and why there is nothing to claim.

Per address, the latest posted payout leaf (cumulative amount and proof) and what is left to claim, the
user's "Claim for me" requests, the reason a user with nothing claimable has nothing to claim, and the open
harm holds that keep their earnings out of epochs. `POSTED` is the epoch states whose leaves are claimable.
"""

from .. import ledger
from ..models import (
    AccountKind,
    ChainClaim,
    EarningsHold,
    EpochState,
    HoldState,
    PayoutLeaf,
    SettlementShare,
    SlashShare,
)
from .credit import wallet_state

POSTED = (EpochState.ROOT_POSTED, EpochState.RELAYED, EpochState.CLOSED)


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


def claim_relays_for(*, user, limit: int = 5) -> list:
    """The user's latest "Claim for me" requests, newest first (their status, for /rewards/claim/)."""
    from ..models import ClaimRelay

    return list(ClaimRelay.objects.filter(user=user).order_by("-requested_at", "-id")[:limit])


def nothing_to_claim(*, user) -> tuple[str, str]:
    """Why a user with nothing claimable has nothing to claim: (reason, message for them). Reasons:
    `nothing_earned`, `epoch_not_closed` (earnings wait for an epoch to freeze or to be published; with
    no payout wallet they are not frozen at all), `held` (a harm hold keeps them out of epochs),
    `already_claimed`, `withheld`. Call it when `claims_for` has nothing claimable."""
    from ..models import PayoutAllocation

    shares = SettlementShare.objects.filter(user=user)
    slash_shares = SlashShare.objects.filter(user=user)  # their part of slashed stakes, paid like fee shares
    earned = ledger.sum_amounts(shares) + ledger.sum_amounts(slash_shares)
    if earned == 0:
        return "nothing_earned", ("Nothing to claim: you have not earned any OPEN yet. You earn when answers use "
                                  "your rows or a model you own.")
    claimed = ledger.balance(kind=AccountKind.PAID_OUT, user=user)
    publishing = ledger.sum_amounts(PayoutAllocation.objects.filter(user=user).exclude(epoch__state__in=POSTED))
    unfrozen = (ledger.sum_amounts(shares.filter(epoch__isnull=True, withheld_by__isnull=True))
                + ledger.sum_amounts(slash_shares.filter(epoch__isnull=True)))
    already = f" Everything published before ({ledger.format_open(claimed)} OPEN) has been claimed." if claimed else ""
    if publishing:
        return "epoch_not_closed", (f"Nothing to claim yet: {ledger.format_open(publishing)} OPEN is in an epoch that "
                                    f"is still being published on chain; it becomes claimable when the epoch "
                                    f"closes.{already}")
    if unfrozen and earnings_holds_open(user=user):
        return "held", (f"Nothing to claim yet: {ledger.format_open(unfrozen)} OPEN is held for review (see "
                        f"“Earnings held for review”) and is not in any epoch until a curator decides.{already}")
    if unfrozen:
        wallet = "" if wallet_state(user=user)["current"] else (
            " Link a payout wallet first: earnings are only published for accounts with one.")
        return "epoch_not_closed", (f"Nothing to claim yet: {ledger.format_open(unfrozen)} OPEN you earned is waiting "
                                    f"for the next epoch to close.{wallet}{already}")
    if claimed:
        return "already_claimed", (f"Nothing to claim: everything published for you "
                                   f"({ledger.format_open(claimed)} OPEN) has already been claimed.")
    return "withheld", "Nothing to claim: your earnings were withheld after review."


def earnings_holds_open(*, user) -> list[EarningsHold]:
    """The user's open harm holds (newest first): while there is one, none of their earnings go into an
    epoch."""
    return list(EarningsHold.objects.filter(user=user, state=HoldState.HELD).order_by("-created_at", "-id"))
