"""Fee recording and settlement: an inference's fee is recorded and held on the payer's credit in the
request's transaction (`fee_record`), then booked in batches (`fee_settle_batch`, `fees_settle_pending`)
into the double-entry ledger; `fee_settle` does both at once.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .. import ledger
from ..bulk import insert_rows
from ..models import (
    AccountKind,
    Fallback,
    PendingFee,
    PromotionalCredit,
    Settlement,
    SettlementShare,
    ShareRole,
)
from ..splitting import largest_remainder
from .fees import PPM, _clean_shares, fee_policy_current, fee_split

logger = logging.getLogger("rewards")

# An inference records its fee (`fee_record`: one row, and the fee held on the payer's credit, in the
# request's transaction); `fee_settle_batch` then books many recorded fees in one transaction with a fixed
# number of queries. Holding is what makes batching safe: a held fee is already covered, so a settlement
# never refuses and never overdraws. `fee_settle` does both at once for callers that need the booking now.

def _fee_input(*, inference_id, fee, contributor_shares) -> tuple[str, dict[int, int]]:
    inference_id = str(inference_id or "").strip()
    if not inference_id or len(inference_id) > 120:
        raise ValidationError({"inference_id": "Give the inference id (at most 120 characters)."})
    if isinstance(fee, bool) or not isinstance(fee, int) or fee <= 0:
        raise ValidationError({"fee": "The fee is a positive int in base units (no floats)."})
    shares = _clean_shares(contributor_shares)
    if shares:
        known = set(get_user_model().objects.filter(pk__in=list(shares)).values_list("pk", flat=True))
        if known != set(shares):
            raise ValidationError({"contributor_shares": f"Unknown user ids: {sorted(set(shares) - known)}."})
    return inference_id, shares


def fee_record(*, inference_id: str, payer, model_owner, fee: int, contributor_shares: dict,
               model_version_hash: str, receipt_id: str | None = None, contributor_rows: dict | None = None,
               settle_soon: bool = True, awaiting_receipt: bool = False) -> PendingFee | Settlement:
    """Record an inference's `fee` (base units) and hold it on `payer`'s credit; it is booked by the next
    `fee_settle_batch` (queued on commit, at most once a `REWARDS_SETTLE_DEBOUNCE_S`; beat runs it every
    `REWARDS_SETTLE_EVERY_S` too). Call it in the request's transaction: a rollback takes the hold back.

    Returns the `PendingFee`, or the `Settlement` when this inference was already settled. Idempotent: a
    repeat with the same `inference_id` writes nothing. Raises `InsufficientCredit` (nothing written)
    when `balance - held` is short, and `ValidationError` for bad input or an inference id reused with a
    different fee or payer.

    `awaiting_receipt`: hold the fee now, when the answer is given, and split it once its receipt arrives
    (`fee_attach_receipt`); until then no batch settles it. So an answer is only given against credit that
    is held for it, whoever computes the receipt and however many answers one payer asks for at once."""
    inference_id, shares = _fee_input(inference_id=inference_id, fee=fee, contributor_shares=contributor_shares)
    existing = Settlement.objects.filter(inference_id=inference_id).first()
    if existing is not None:
        return _same_fee(existing, payer=payer, fee=fee)
    rows = {str(int(k)): [str(r) for r in v][: settings.REWARDS_ROWS_PER_CONTRIBUTOR]
            for k, v in (contributor_rows or {}).items() if int(k) in shares}
    try:
        # Not durable: inference, receipts and retrieval answers record the fee inside their own transaction.
        with transaction.atomic():
            pending = PendingFee.objects.create(
                inference_id=inference_id, payer=payer, model_owner=model_owner,
                model_version_hash=model_version_hash or "", receipt_id=receipt_id or "", fee=fee,
                policy=fee_policy_current(), contributor_shares={str(uid): ppm for uid, ppm in shares.items()},
                contributor_rows=rows, awaiting_receipt=awaiting_receipt)
            ledger.credit_hold(user_id=payer.pk, amount=fee)
            promotional = _promotional_take(user_id=payer.pk, fee=fee)
            if promotional:
                PendingFee.objects.filter(pk=pending.pk).update(promotional=promotional)
                pending.promotional = promotional
    except IntegrityError:
        existing = (PendingFee.objects.filter(inference_id=inference_id).first()
                    or Settlement.objects.filter(inference_id=inference_id).first())
        if existing is None:
            raise
        return _same_fee(existing, payer=payer, fee=fee)
    if settle_soon and not awaiting_receipt:
        _settle_soon()
    return pending


def fee_attach_receipt(*, inference_id: str, contributor_shares: dict, receipt_id: str | None = None,
                       contributor_rows: dict | None = None) -> PendingFee | Settlement | None:
    """The split of a fee held with `awaiting_receipt`: store its receipt's shares (empty: no receipt could be
    made, the policy's fallback pays the pool) and let the next batch settle it. Idempotent: a fee already
    released for settlement (its receipt came before, or it waited past `REWARDS_RECEIPT_WAIT_S`) or already
    settled is returned unchanged; None when no fee was held under `inference_id`."""
    inference_id, shares = _fee_input(inference_id=inference_id, fee=1, contributor_shares=contributor_shares)
    rows = {str(int(k)): [str(r) for r in v][: settings.REWARDS_ROWS_PER_CONTRIBUTOR]
            for k, v in (contributor_rows or {}).items() if int(k) in shares}
    # Not durable: attaching a receipt runs in the inference's transaction (inference.integrations).
    with transaction.atomic():
        pending = PendingFee.objects.select_for_update().filter(inference_id=inference_id).first()
        if pending is None:
            return Settlement.objects.filter(inference_id=inference_id).first()
        if not pending.awaiting_receipt:
            return pending
        pending.contributor_shares = {str(uid): ppm for uid, ppm in shares.items()}
        pending.contributor_rows, pending.receipt_id, pending.awaiting_receipt = rows, receipt_id or "", False
        pending.save(update_fields=["contributor_shares", "contributor_rows", "receipt_id", "awaiting_receipt"])
    _settle_soon()
    return pending


def fees_release_unreceipted(*, older_than_s: int | None = None) -> int:
    """Fees held for a receipt that never came (its attribution task was lost) are released for settlement
    without one after `REWARDS_RECEIPT_WAIT_S`: the payer was answered, so the fee is owed; its pool goes by
    the policy's fallback, as for any answer without a receipt. Returns how many were released."""
    wait = settings.REWARDS_RECEIPT_WAIT_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=wait)
    stale = list(PendingFee.objects.filter(awaiting_receipt=True, created_at__lt=cutoff)
                 .values_list("inference_id", flat=True)[:10_000])
    if stale:
        logger.warning("settling %d fee(s) whose receipt never came, without one: %s", len(stale), stale[:10])
        PendingFee.objects.filter(inference_id__in=stale, awaiting_receipt=True).update(awaiting_receipt=False)
    return len(stale)


def _promotional_take(*, user_id: int, fee: int) -> int:
    """Spend the payer's promotional credit first: how much of `fee` it pays (0 for almost everyone: one
    indexed lookup). Called after `credit_hold`, so the payer's credit row is locked first and two fees
    of one payer take promotional credit one after the other."""
    promo = PromotionalCredit.objects.select_for_update().filter(user_id=user_id).first()
    if promo is None or int(promo.remaining) <= 0:
        return 0
    take = min(fee, int(promo.remaining))
    PromotionalCredit.objects.filter(pk=promo.pk).update(remaining=int(promo.remaining) - take)
    return take


def _promotional_restore(fees) -> None:
    """A fee released without a charge gives back the promotional credit it took."""
    back: dict[int, int] = defaultdict(int)
    for p in fees:
        if int(p.promotional):
            back[p.payer_id] += int(p.promotional)
    for user_id, amount in sorted(back.items()):
        promo = PromotionalCredit.objects.select_for_update().get(user_id=user_id)
        PromotionalCredit.objects.filter(pk=promo.pk).update(remaining=int(promo.remaining) + amount)


def _receiptless_weights(version_hashes: set[str]) -> dict[str, dict[int, int]]:
    """{model version hash: {user id: weight}} for the contributors' part of fees without a receipt: the
    weights an empty receipt pays (the training data by its value, recorded when the index was built) where
    the version was indexed, else the rows it was trained on. Users that no longer exist are left out."""
    from attribution.selectors import index_fallback_shares
    from models_registry.selectors import model_version_training_rows

    by_version = index_fallback_shares(version_hashes=version_hashes)
    unindexed = set(version_hashes) - set(by_version)
    if unindexed:
        by_version |= model_version_training_rows(version_hashes=unindexed)
    users = {uid for counts in by_version.values() for uid in counts}
    existing = set(get_user_model().objects.filter(pk__in=users).values_list("pk", flat=True)) if users else set()
    return {h: {uid: n for uid, n in counts.items() if uid in existing} for h, counts in by_version.items()}


def _ppm_of(weights: dict[int, int]) -> dict[int, int]:
    return largest_remainder(PPM, sorted(weights.items())) if weights and sum(weights.values()) > 0 else {}


def _settle_soon() -> None:
    # One queued batch per debounce window, not one task per inference; beat picks up any stragglers.
    if cache.add("rewards:fees-settle-queued", True, timeout=settings.REWARDS_SETTLE_DEBOUNCE_S):
        from ..tasks import fees_settle

        fees_settle.delay_on_commit()


@dataclass(frozen=True)
class FeeBatch:
    settled: int  # fees booked
    released: int  # duplicates of an already settled inference: their hold released, nothing charged
    transaction_id: int | None


def fee_settle_batch(*, limit: int | None = None, inference_ids=None) -> FeeBatch:
    """Book up to `limit` recorded fees (oldest first; only `inference_ids` when given) in one transaction
    with a fixed number of queries, whatever the batch size: lock the pending rows (SKIP LOCKED, so
    settlers running side by side take different fees), split each fee exactly as a single settlement
    would (the policy version it was recorded under, largest remainder per fee), insert the settlements
    and their shares, one ledger transaction with one entry per account, charge the payers' credit
    (balance and held drop together) and delete the pending rows.

    Never twice: the pending row goes in the same transaction that books it, `Settlement.inference_id` is
    unique, and a fee whose inference was settled before (a retry racing its settlement) is released
    without a charge. A crash anywhere rolls the whole batch back; the next run settles it."""
    limit = limit or settings.REWARDS_SETTLE_BATCH
    # Not durable: `fee_settle` books its own fee through this batch, inside its transaction.
    with transaction.atomic():
        queryset = (PendingFee.objects.filter(awaiting_receipt=False)
                    .select_for_update(skip_locked=True, of=("self",)).select_related("policy")
                    .annotate(settled_before=Exists(Settlement.objects.filter(inference_id=OuterRef("inference_id")))))
        if inference_ids is not None:
            queryset = queryset.filter(inference_id__in=[str(i) for i in inference_ids])
        pending = list(queryset.order_by("pk")[:limit])
        if not pending:
            return FeeBatch(0, 0, None)
        settled_before = sorted(p.inference_id for p in pending if p.settled_before)
        to_book = [p for p in pending if not p.settled_before]
        # Users are never deleted (ledger rows protect them); a contributor who was deleted anyway is
        # left out of that fee's split rather than blocking the batch.
        named = {int(uid) for p in to_book for uid in p.contributor_shares}
        existing = set(get_user_model().objects.filter(pk__in=named).values_list("pk", flat=True)) if named else set()
        # A fee without a receipt pays its contributors' part to the rows that trained the model (the default
        # fallback), by the value split recorded at index build or else by rows: a fixed number of queries for
        # the model versions of the batch's receiptless fees and their users.
        unreceipted = {p.model_version_hash for p in to_book if not p.contributor_shares
                       and p.policy.fallback == Fallback.TRAINING_DATA}
        receiptless = _receiptless_weights(unreceipted) if unreceipted else {}
        receiptless_ppm = {version: _ppm_of(weights) for version, weights in receiptless.items()}
        # The promotional part of a fee is split to nobody (`credit_grant`): only the rest is.
        splits = [fee_split(fee=p.fee - int(p.promotional), policy=p.policy, contributor_shares={
            int(uid): ppm for uid, ppm in p.contributor_shares.items() if int(uid) in existing},
            training_shares=receiptless.get(p.model_version_hash)) for p in to_book]

        amounts: dict[tuple, int] = defaultdict(int)  # (account kind, user id or None) -> amount
        released: dict[tuple, int] = defaultdict(int)
        for p, split in zip(to_book, splits, strict=True):
            amounts[(AccountKind.CREDIT, p.payer_id)] -= p.fee
            if int(p.promotional):
                amounts[(AccountKind.GRANTS, None)] += int(p.promotional)
            amounts[(AccountKind.TREASURY, None)] += split.protocol
            amounts[(AccountKind.OWNER_EARNINGS, p.model_owner_id)] += split.owner
            for uid, amount in split.contributors.items():
                amounts[(AccountKind.EARNINGS, uid)] += amount
        for p in pending:
            released[(AccountKind.CREDIT, p.payer_id)] += p.fee
        accounts = ledger.accounts_get(set(amounts) | set(released))
        account = lambda pair: accounts[ledger.account_key(*pair)]  # noqa: E731

        def book(txn):
            created = insert_rows(Settlement, [{
                "inference_id": p.inference_id, "payer_id": p.payer_id, "model_owner_id": p.model_owner_id,
                "model_version_hash": p.model_version_hash, "receipt_id": p.receipt_id, "fee": p.fee,
                "policy_id": p.policy_id, "protocol_amount": split.protocol, "owner_amount": split.owner,
                "contributors_amount": sum(split.contributors.values()), "fallback_used": split.fallback_used,
                "promotional_amount": int(p.promotional), "transaction_id": txn.pk, "created_at": p.created_at,
            } for p, split in zip(to_book, splits, strict=True)], returning=("inference_id", "id"))
            settlement_ids = dict(created)
            shares = []
            for p, split in zip(to_book, splits, strict=True):
                settlement_id = settlement_ids[p.inference_id]
                if split.owner:
                    shares.append({"settlement_id": settlement_id, "user_id": p.model_owner_id,
                                   "role": ShareRole.OWNER.value, "ppm": 0, "amount": split.owner, "rows": []})
                ppm = ({int(uid): v for uid, v in p.contributor_shares.items()} if p.contributor_shares
                       else receiptless_ppm.get(p.model_version_hash, {}))
                shares += [{"settlement_id": settlement_id, "user_id": uid, "role": ShareRole.CONTRIBUTOR.value,
                            "ppm": ppm.get(uid, 0), "amount": amount,
                            "rows": p.contributor_rows.get(str(uid), [])} for uid, amount in split.contributors.items()]
            insert_rows(SettlementShare, shares)
            _promotional_restore([p for p in pending if p.settled_before])
            PendingFee.objects.filter(pk__in=[p.pk for p in pending]).delete()

        txn = ledger.post_settled_fees(
            idempotency_key=f"fees:{pending[0].pk}:{pending[-1].pk}:{len(pending)}",
            lines=[(account(pair), amount) for pair, amount in amounts.items()],
            held_released={account(pair).pk: amount for pair, amount in released.items()},
            memo=f"fees of {len(to_book)} inferences", before_charge=book)
    if settled_before:
        logger.warning("released %d fee(s) recorded again after their inference was settled: %s",
                       len(settled_before), settled_before[:10])
    return FeeBatch(len(to_book), len(pending) - len(to_book), txn.pk if txn else None)


def fees_settle_pending(*, max_seconds: float | None = None, limit: int | None = None) -> int:
    """Settle recorded fees batch after batch until none are left (or `max_seconds` have passed).
    Returns how many were settled. The beat task and the on-demand task both call this."""
    deadline = time.monotonic() + (max_seconds if max_seconds is not None else settings.REWARDS_SETTLE_MAX_S)
    limit = limit or settings.REWARDS_SETTLE_BATCH
    fees_release_unreceipted()
    settled = 0
    while True:
        batch = fee_settle_batch(limit=limit)
        settled += batch.settled
        if batch.settled + batch.released < limit or time.monotonic() >= deadline:
            return settled


def fee_settle(*, inference_id: str, payer, model_owner, fee: int, contributor_shares: dict,
               model_version_hash: str, receipt_id: str | None = None,
               contributor_rows: dict | None = None) -> Settlement:
    """Record and settle one inference's fee now (`fee_record`, then a batch of this one fee), in one
    transaction. Same guarantees and errors as `fee_record`; returns the `Settlement`."""
    # Not durable: inference completion settles the fee inside its own transaction.
    with transaction.atomic():
        recorded = fee_record(inference_id=inference_id, payer=payer, model_owner=model_owner, fee=fee,
                              contributor_shares=contributor_shares, model_version_hash=model_version_hash,
                              receipt_id=receipt_id, contributor_rows=contributor_rows, settle_soon=False)
        if isinstance(recorded, Settlement):
            return recorded
        fee_settle_batch(inference_ids=[recorded.inference_id], limit=1)
        return Settlement.objects.get(inference_id=recorded.inference_id)


def _same_fee(existing: Settlement | PendingFee, *, payer, fee: int) -> Settlement | PendingFee:
    if existing.fee != fee or existing.payer_id != payer.pk:
        raise ValidationError({"inference_id": f"Inference {existing.inference_id} was already charged with a "
                                               "different fee or payer; it is never charged twice."})
    return existing
