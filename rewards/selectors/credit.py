"""Reads of the fee policy, payout wallets, inference credit and deposits, and of one inference's fee.

The public fee policy and its history, a user's payout wallets (in effect, pending, all), what the deposit
page shows (where to send OPEN, the deposits and grants credited), the spendable credit an inference is paid
from, and one inference's fee with its split for those allowed to see it.
"""

from django.conf import settings

from .. import ledger
from ..models import AccountKind, FeePolicy, FeePolicyVersion, PendingFee, Settlement, ShareRole, Wallet


def fee_policy_in_force() -> FeePolicyVersion:
    """The policy version new settlements use, read only. Before anything is settled or the policy edited
    there is no saved version: this returns version 1 from the admin's policy (or the defaults) unsaved, the
    version the first write (`services.fee_policy_current`) will save. A read never creates it."""
    version = FeePolicyVersion.objects.order_by("-version").first()
    if version is not None:
        return version
    policy = FeePolicy.objects.filter(pk=1).first() or FeePolicy()
    return FeePolicyVersion(version=1, protocol_bps=policy.protocol_bps, owner_bps=policy.owner_bps,
                            contributors_bps=policy.contributors_bps, fallback=policy.fallback)


def fee_policy_public() -> dict:
    current = fee_policy_in_force()
    saved = list(FeePolicyVersion.objects.order_by("-version")[:50])
    return {
        "version": current.version,
        "protocol_bps": current.protocol_bps,
        "owner_bps": current.owner_bps,
        "contributors_bps": current.contributors_bps,
        "fallback": current.fallback,
        "rounding": "largest remainder: every base unit is assigned",
        "history": [
            {"version": v.version, "protocol_bps": v.protocol_bps, "owner_bps": v.owner_bps,
             "contributors_bps": v.contributors_bps, "fallback": v.fallback,
             # The unsaved version 1 (nothing written yet) has no date until the first write saves it.
             "created_at": v.created_at.isoformat() if v.created_at else ""}
            for v in saved or [current]
        ],
    }


def wallet_state(*, user, now=None) -> dict:
    from django.utils import timezone

    now = now or timezone.now()
    wallets = list(Wallet.objects.filter(user=user).order_by("-effective_at"))
    current = next((w for w in wallets if w.effective_at <= now), None)
    pending = next((w for w in wallets if w.effective_at > now), None)
    return {"current": current, "pending": pending, "all": wallets}


def deposit_page_url() -> str:
    """The absolute address of the page that explains how to add inference credit (linked from every
    "not enough credit" refusal)."""
    from urllib.parse import urljoin

    from django.urls import reverse

    return urljoin(settings.SITE_URL, reverse("rewards:deposit"))


def deposit_overview(*, user) -> dict:
    """What the deposit page shows: where to send OPEN (the deposit address of the recorded deployment),
    which of the user's addresses are credited (their linked wallets), how far the deposit indexer has
    scanned, the credit and every deposit and grant credited to the user. Reads the database only."""
    from ..models import ChainCursor, ChainDeployment, ChainDeposit, CreditGrant

    deployment = ChainDeployment.objects.order_by("-created_at", "-id").first()
    cursor = ChainCursor.objects.filter(deployment=deployment, name="deposits").first() if deployment else None
    scanned = cursor.next_block - 1 if cursor and cursor.next_block > deployment.deployed_at_block else None
    deposits = list(ChainDeposit.objects.filter(user=user).order_by("-block_number", "-log_index")[:100])
    grants = list(CreditGrant.objects.filter(user=user).order_by("-created_at", "-id")[:100])
    available = ledger.credit_available(user_id=user.pk)
    balance = ledger.balance(kind=AccountKind.CREDIT, user=user)
    return {
        "deposit_address": deployment.deposit_address if deployment else (settings.REWARDS_DEPOSIT_ADDRESS or None),
        "token_address": deployment.token_address if deployment else (settings.REWARDS_TOKEN_ADDRESS or None),
        "chain_id": deployment.chain_id if deployment else settings.CHAIN_ID,
        "confirmations": max(1, settings.CHAIN_CONFIRMATIONS),
        "last_block_scanned": scanned,
        "wallet": wallet_state(user=user),
        "credit": {"balance": balance, "available": available, "held": balance - available},
        "deposits": deposits,
        "deposited_total": ledger.sum_amounts(ChainDeposit.objects.filter(user=user)),
        "grants": grants,
        "starter_grant": _starter_grant_amount(),
    }


def _starter_grant_amount() -> int:
    from ..services import starter_grant_amount

    try:
        return starter_grant_amount()
    except Exception:  # noqa: BLE001 - a bad setting is reported by `manage.py check`; the page still renders
        return 0


def credit_balance(*, user) -> int:
    """The user's spendable OPEN credit, in base units (what an inference is paid from): the balance
    less the fees of inferences recorded and not settled yet."""
    return ledger.credit_available(user_id=user.pk)


def fee_for(*, inference_id: str, user) -> dict | None:
    """One inference's fee and its split, for its payer, the model's owner or staff (None otherwise, or
    when there is no such fee). `status` is "pending" (held, booked by the next batch: the split shown
    is the one it will be booked with) or "settled"."""
    from ..services import fee_split

    settlement = Settlement.objects.filter(inference_id=str(inference_id)).select_related(
        "policy", "transaction").first()
    pending = None if settlement else PendingFee.objects.filter(inference_id=str(inference_id)).select_related(
        "policy").first()
    charge = settlement or pending
    if charge is None or not (user.is_staff or user.pk in (charge.payer_id, charge.model_owner_id)):
        return None
    if settlement is not None:
        contributors = dict(settlement.shares.filter(role=ShareRole.CONTRIBUTOR).values_list("user_id", "amount"))
        protocol, owner = settlement.protocol_amount, settlement.owner_amount
    else:
        split = fee_split(fee=pending.fee, policy=pending.policy,
                          contributor_shares={int(k): v for k, v in pending.contributor_shares.items()})
        protocol, owner, contributors = split.protocol, split.owner, split.contributors
    return {
        "inference_id": charge.inference_id, "status": "settled" if settlement else "pending", "fee": charge.fee,
        "protocol": protocol, "owner": owner,
        "contributors": [{"user_id": uid, "amount": amount} for uid, amount in sorted(contributors.items())],
        "policy_version": charge.policy.version, "model_version_hash": charge.model_version_hash,
        "recorded_at": charge.created_at,
        "settled_at": settlement.transaction.created_at if settlement else None,
    }
