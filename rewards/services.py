"""Writes for rewards. Keyword arguments, one `transaction.atomic` per change, an audit row for every
admin/user action (fee settlements are audited by their own append-only ledger transaction).

Public API for other apps:

* `fee_record(...)`: hold an inference's fee on the payer's credit, to be booked by the next batch;
  `fee_settle_batch(...)` / `fees_settle_pending(...)` book recorded fees in batches; `fee_settle(...)`
  records and books one fee at once (all idempotent per inference id).
* `credit_grant(...)`, `deposits_index(...)`: OPEN credit from an admin or from an on-chain deposit.
* `epoch_close(...)`: freeze earnings and publish them on chain (a resumable state machine); earnings
  under a harm hold (`rewards.holds`) wait for the curator's decision.
* `claims_index(...)`, `chain_reconcile(...)`, `wallet_nonce_issue(...)`, `wallet_link(...)`.
* `demo_seed(*, users_by_role)`.
"""

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, timedelta
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.services import audit_record
from rewards.chain import ClaimRequest, checksum_address
from rewards.chain.siwe import SiweError, SiweMessage, generate_nonce, verify_sign_in

from . import ledger
from .bulk import insert_rows
from .chainio import ZERO_ADDRESS, contracts, deployment_ensure, get_chain_client, report_issue
from .ledger import InsufficientCredit, LedgerError, format_open  # noqa: F401  (re-exported)
from .models import (
    AccountKind,
    ChainClaim,
    ChainCursor,
    ChainDeposit,
    CreditGrant,
    EarningsHold,
    Epoch,
    EpochState,
    Fallback,
    FeePolicy,
    FeePolicyVersion,
    HoldState,
    LedgerTransaction,
    PayoutAllocation,
    PayoutLeaf,
    PendingFee,
    Settlement,
    SettlementShare,
    ShareRole,
    Wallet,
    WalletNonce,
)

logger = logging.getLogger("rewards")
PPM = 1_000_000
BPS = 10_000
OPEN = 10**18


# --- Fee policy ----------------------------------------------------------------------------------------

def fee_policy_current() -> FeePolicyVersion:
    """The policy version new settlements use (version 1 from the defaults until an admin edits it)."""
    version = FeePolicyVersion.objects.order_by("-version").first()
    if version is None:
        policy = FeePolicy.objects.filter(pk=1).first() or FeePolicy()
        try:
            with transaction.atomic():
                FeePolicy.objects.get_or_create(pk=1, defaults={"protocol_bps": policy.protocol_bps,
                                                                "owner_bps": policy.owner_bps,
                                                                "contributors_bps": policy.contributors_bps,
                                                                "fallback": policy.fallback})
                version = FeePolicyVersion.objects.create(
                    version=1, protocol_bps=policy.protocol_bps, owner_bps=policy.owner_bps,
                    contributors_bps=policy.contributors_bps, fallback=policy.fallback)
        except IntegrityError:
            version = FeePolicyVersion.objects.get(version=1)
    return version


def fee_policy_set(*, actor, protocol_bps: int, owner_bps: int, contributors_bps: int,
                   fallback: str = Fallback.OWNER) -> FeePolicyVersion:
    values = {"protocol_bps": protocol_bps, "owner_bps": owner_bps, "contributors_bps": contributors_bps}
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BPS:
            raise ValidationError({name: "Give a whole number of basis points between 0 and 10,000."})
    if sum(values.values()) != BPS:
        raise ValidationError(f"The shares add up to {sum(values.values())} basis points; they must add up to 10,000.")
    if fallback not in Fallback.values:
        raise ValidationError({"fallback": f"Choose one of {', '.join(Fallback.values)}."})
    current = fee_policy_current()
    with transaction.atomic():
        version = FeePolicyVersion.objects.create(version=current.version + 1, fallback=fallback,
                                                  created_by=actor if getattr(actor, "pk", None) else None, **values)
        FeePolicy.objects.update_or_create(pk=1, defaults={**values, "fallback": fallback, "version": version.version})
        audit_record(actor=actor, action="rewards.fee_policy_set", target=version,
                     details={**values, "fallback": fallback, "version": version.version})
    return version


# --- Splitting ------------------------------------------------------------------------------------------

def largest_remainder(total: int, weights) -> dict:
    """Split `total` base units in proportion to `weights` [(key, weight)], exactly: everyone gets the
    floor of their quota, then the leftover units go one each to the largest remainders (ties: the
    order given). The parts always sum to `total`."""
    weights = [(key, int(weight)) for key, weight in weights]
    denominator = sum(weight for _, weight in weights)
    if denominator <= 0:
        raise ValueError("weights must have a positive sum")
    parts, remainders = {}, []
    for index, (key, weight) in enumerate(weights):
        quotient, remainder = divmod(total * weight, denominator)
        parts[key] = quotient
        remainders.append((-remainder, index, key))
    leftover = total - sum(parts.values())
    for _, _, key in sorted(remainders)[:leftover]:
        parts[key] += 1
    return parts


@dataclass(frozen=True)
class FeeSplit:
    protocol: int
    owner: int
    contributors: dict  # {user_id: amount}
    fallback_used: bool

    @property
    def total(self) -> int:
        return self.protocol + self.owner + sum(self.contributors.values())


def fee_split(*, fee: int, policy: FeePolicyVersion, contributor_shares: dict) -> FeeSplit:
    parts = largest_remainder(fee, [("protocol", policy.protocol_bps), ("owner", policy.owner_bps),
                                    ("contributors", policy.contributors_bps)])
    protocol, owner, pool = parts["protocol"], parts["owner"], parts["contributors"]
    shares = {uid: ppm for uid, ppm in contributor_shares.items() if ppm > 0}
    if not shares:
        if policy.fallback == Fallback.PROTOCOL:
            protocol += pool
        else:
            owner += pool
        return FeeSplit(protocol, owner, {}, pool > 0 or policy.contributors_bps > 0)
    contributors = largest_remainder(pool, sorted(shares.items()))
    return FeeSplit(protocol, owner, contributors, False)


def _clean_shares(contributor_shares) -> dict[int, int]:
    shares: dict[int, int] = {}
    for key, value in (contributor_shares or {}).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError({"contributor_shares": f"Share of user {key} must be a non-negative int (ppm)."})
        shares[int(key)] = shares.get(int(key), 0) + value
    if shares and sum(shares.values()) != PPM:
        raise ValidationError({"contributor_shares": f"Shares must sum to {PPM:,} ppm, got {sum(shares.values()):,}."})
    return shares


# --- Settlement -----------------------------------------------------------------------------------------
#
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
               settle_soon: bool = True) -> PendingFee | Settlement:
    """Record an inference's `fee` (base units) and hold it on `payer`'s credit; it is booked by the next
    `fee_settle_batch` (queued on commit, at most once a `REWARDS_SETTLE_DEBOUNCE_S`; beat runs it every
    `REWARDS_SETTLE_EVERY_S` too). Call it in the request's transaction: a rollback takes the hold back.

    Returns the `PendingFee`, or the `Settlement` when this inference was already settled. Idempotent: a
    repeat with the same `inference_id` writes nothing. Raises `InsufficientCredit` (nothing written)
    when `balance - held` is short, and `ValidationError` for bad input or an inference id reused with a
    different fee or payer."""
    inference_id, shares = _fee_input(inference_id=inference_id, fee=fee, contributor_shares=contributor_shares)
    existing = Settlement.objects.filter(inference_id=inference_id).first()
    if existing is not None:
        return _same_fee(existing, payer=payer, fee=fee)
    rows = {str(int(k)): [str(r) for r in v][: settings.REWARDS_ROWS_PER_CONTRIBUTOR]
            for k, v in (contributor_rows or {}).items() if int(k) in shares}
    try:
        with transaction.atomic():
            pending = PendingFee.objects.create(
                inference_id=inference_id, payer=payer, model_owner=model_owner,
                model_version_hash=model_version_hash or "", receipt_id=receipt_id or "", fee=fee,
                policy=fee_policy_current(), contributor_shares={str(uid): ppm for uid, ppm in shares.items()},
                contributor_rows=rows)
            ledger.credit_hold(user_id=payer.pk, amount=fee)
    except IntegrityError:
        existing = (PendingFee.objects.filter(inference_id=inference_id).first()
                    or Settlement.objects.filter(inference_id=inference_id).first())
        if existing is None:
            raise
        return _same_fee(existing, payer=payer, fee=fee)
    if settle_soon:
        _settle_soon()
    return pending


def _settle_soon() -> None:
    # One queued batch per debounce window, not one task per inference; beat picks up any stragglers.
    if cache.add("rewards:fees-settle-queued", True, timeout=settings.REWARDS_SETTLE_DEBOUNCE_S):
        from .tasks import fees_settle

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
    with transaction.atomic():
        queryset = (PendingFee.objects.select_for_update(skip_locked=True, of=("self",)).select_related("policy")
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
        splits = [fee_split(fee=p.fee, policy=p.policy, contributor_shares={
            int(uid): ppm for uid, ppm in p.contributor_shares.items() if int(uid) in existing}) for p in to_book]

        amounts: dict[tuple, int] = defaultdict(int)  # (account kind, user id or None) -> amount
        released: dict[tuple, int] = defaultdict(int)
        for p, split in zip(to_book, splits, strict=True):
            amounts[(AccountKind.CREDIT, p.payer_id)] -= p.fee
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
                "transaction_id": txn.pk, "created_at": p.created_at,
            } for p, split in zip(to_book, splits, strict=True)], returning=("inference_id", "id"))
            settlement_ids = dict(created)
            shares = []
            for p, split in zip(to_book, splits, strict=True):
                settlement_id = settlement_ids[p.inference_id]
                if split.owner:
                    shares.append({"settlement_id": settlement_id, "user_id": p.model_owner_id,
                                   "role": ShareRole.OWNER.value, "ppm": 0, "amount": split.owner, "rows": []})
                shares += [{"settlement_id": settlement_id, "user_id": uid, "role": ShareRole.CONTRIBUTOR.value,
                            "ppm": p.contributor_shares[str(uid)], "amount": amount,
                            "rows": p.contributor_rows.get(str(uid), [])} for uid, amount in split.contributors.items()]
            insert_rows(SettlementShare, shares)
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


# --- Credit ---------------------------------------------------------------------------------------------

def credit_grant(*, actor, user, amount: int, reason: str, idempotency_key: str | None = None) -> CreditGrant:
    """An admin grants OPEN credit (from the grants account). Audited; idempotent per key."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError({"amount": "Grant a positive int amount in base units."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the credit is granted; it is kept in the audit trail."})
    key = f"grant:{idempotency_key or uuid.uuid4().hex}"
    existing = CreditGrant.objects.filter(transaction__idempotency_key=key).first()
    if existing:
        return existing
    with transaction.atomic():
        accounts = ledger.accounts_get([(AccountKind.CREDIT, user.pk), (AccountKind.GRANTS, None)])
        credit = accounts[ledger.account_key(AccountKind.CREDIT, user.pk)]
        type(credit).objects.select_for_update().filter(pk=credit.pk).first()
        txn = ledger.post(idempotency_key=key, kind=LedgerTransaction.Kind.GRANT, memo=reason,
                          lines=[(accounts["grants"], -amount), (credit, amount)])
        grant = CreditGrant.objects.create(user=user, amount=amount, reason=reason[:200], transaction=txn,
                                           granted_by=actor if getattr(actor, "pk", None) else None)
        audit_record(actor=actor, action="rewards.credit_grant", target=grant,
                     details={"user": user.pk, "amount": str(amount), "reason": reason})
    return grant


def _cursor(deployment, name: str) -> ChainCursor:
    cursor, _ = ChainCursor.objects.get_or_create(deployment=deployment, name=name,
                                                  defaults={"next_block": deployment.deployed_at_block})
    return cursor


def _user_by_address(address: str):
    wallet = Wallet.objects.filter(address=checksum_address(address)).select_related("user").first()
    return wallet.user if wallet else None


def deposits_index(*, client=None) -> int:
    """Credit OPEN transfers into the deposit address once they have `CHAIN_CONFIRMATIONS`, exactly once
    per (tx hash, log index). A sender with no linked wallet is reported, not credited. Returns the
    number of deposits credited."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    token, distributor = contracts(deployment, client)
    cursor = _cursor(deployment, "deposits")
    page = token.deposits_to(deployment.deposit_address, cursor.next_block)
    credited = 0
    for event in page.events:
        if event.sender in (ZERO_ADDRESS, distributor.address):
            continue  # the mint at deployment, or a distributor payout: not a user's deposit
        tx_hash, log_index = event.position.key
        if ChainDeposit.objects.filter(deployment=deployment, tx_hash=tx_hash, log_index=log_index).exists():
            continue
        user = _user_by_address(event.sender)
        try:
            with transaction.atomic():
                txn = None
                if user is not None:
                    accounts = ledger.accounts_get([(AccountKind.CREDIT, user.pk), (AccountKind.DEPOSITS, None)])
                    credit = accounts[ledger.account_key(AccountKind.CREDIT, user.pk)]
                    type(credit).objects.select_for_update().filter(pk=credit.pk).first()
                    txn = ledger.post(idempotency_key=f"deposit:{deployment.pk}:{tx_hash}:{log_index}",
                                      kind=LedgerTransaction.Kind.DEPOSIT, memo=f"deposit from {event.sender}",
                                      lines=[(accounts["deposits"], -event.amount), (credit, event.amount)])
                deposit = ChainDeposit.objects.create(
                    deployment=deployment, tx_hash=tx_hash, log_index=log_index,
                    block_number=event.position.block_number, sender=event.sender, amount=event.amount, user=user,
                    transaction=txn)
                if user is None:
                    report_issue(kind="unmatched_deposit", fingerprint=f"deposit:{deployment.pk}:{tx_hash}:{log_index}",
                                 deployment=deployment,
                                 detail=f"{format_open(event.amount)} OPEN from {event.sender} (tx {tx_hash}) came "
                                        "from an address no account has linked; not credited.",
                                 data={"tx_hash": tx_hash, "log_index": log_index, "amount": str(event.amount)})
                else:
                    audit_record(actor=None, action="rewards.deposit_credit", target=deposit,
                                 details={"user": user.pk, "amount": str(event.amount), "sender": event.sender,
                                          "tx_hash": tx_hash, "log_index": log_index})
                    credited += 1
        except IntegrityError:
            continue  # another indexer booked it first
    if page.to_block >= page.from_block:
        ChainCursor.objects.filter(pk=cursor.pk).update(next_block=page.to_block + 1)
    return credited


# --- Wallets --------------------------------------------------------------------------------------------

def siwe_domain() -> str:
    return settings.REWARDS_SIWE_DOMAIN or urlparse(settings.SITE_URL).netloc


def wallet_nonce_issue(*, user, address: str, now=None) -> WalletNonce:
    """Issue a one-time SIWE message for `address`; the wallet signs it with personal_sign."""
    try:
        address = checksum_address((address or "").strip())
    except ValueError as exc:
        raise ValidationError({"address": f"Not a valid Ethereum address: {exc}"}) from exc
    now = now or timezone.now()
    expires = now + timedelta(minutes=settings.REWARDS_SIWE_TTL_MINUTES)
    nonce = generate_nonce()
    message = SiweMessage(
        domain=siwe_domain(), address=address, uri=settings.SITE_URL, chain_id=settings.CHAIN_ID, nonce=nonce,
        issued_at=now.astimezone(UTC).replace(microsecond=0), expiration_time=expires.astimezone(UTC).replace(microsecond=0),
        statement="Link this wallet to your Lineage account to receive OPEN rewards.",
    )
    return WalletNonce.objects.create(user=user, nonce=nonce, message=message.to_text(), expires_at=expires)


SIWE_MESSAGES = {
    "domain_mismatch": "This message was made for another site.",
    "nonce_mismatch": "The nonce does not match the one issued; request a new message.",
    "chain_mismatch": "This message names another chain.",
    "expired": "This sign-in message has expired; request a new one and sign it again.",
    "not_yet_valid": "This sign-in message is not valid yet.",
    "bad_signature": "The signature could not be read; paste the full 0x… signature.",
    "address_mismatch": "The signature was not made by the wallet named in the message.",
    "malformed": "This is not the sign-in message we issued.",
}


def wallet_link(*, user, message: str, signature: str, now=None) -> Wallet:
    """Verify a signed SIWE message and link its wallet. The first wallet takes effect at once; a
    change takes effect after `WALLET_CHANGE_DELAY_HOURS` (epochs closed before that pay the old one)."""
    now = now or timezone.now()
    message = (message or "").replace("\r\n", "\n").strip("\n")
    try:
        parsed = SiweMessage.parse(message)
    except SiweError as exc:
        raise ValidationError({"message": f"{SIWE_MESSAGES['malformed']} ({exc.detail})"}) from exc
    issued = WalletNonce.objects.filter(nonce=parsed.nonce, user=user).first()
    if issued is None or issued.used_at is not None:
        raise ValidationError({"message": "This message's nonce was not issued to you or was already used; "
                                          "request a new message."})
    if issued.message != message:
        raise ValidationError({"message": "The message was changed after it was issued; sign it exactly as shown."})
    if now >= issued.expires_at:
        raise ValidationError({"message": SIWE_MESSAGES["expired"]})
    try:
        verify_sign_in(message, (signature or "").strip(), expected_domain=siwe_domain(), expected_nonce=issued.nonce,
                       expected_chain_id=settings.CHAIN_ID, now=now)
    except SiweError as exc:
        raise ValidationError({"signature": f"{SIWE_MESSAGES.get(exc.reason, 'Refused.')} ({exc.detail})"}) from exc
    address = parsed.address
    with transaction.atomic():
        if not WalletNonce.objects.filter(pk=issued.pk, used_at__isnull=True).update(used_at=now):
            raise ValidationError({"message": "This message was already used; request a new one."})
        existing = Wallet.objects.filter(address=address).first()
        if existing is not None:
            if existing.user_id != user.pk:
                raise ValidationError({"message": "This wallet is linked to another account."})
            return existing
        current = Wallet.objects.filter(user=user).order_by("-effective_at").first()
        delay = timedelta(hours=settings.WALLET_CHANGE_DELAY_HOURS) if current else timedelta(0)
        wallet = Wallet.objects.create(user=user, address=address, linked_at=now, effective_at=now + delay)
        audit_record(actor=user, action="rewards.wallet_change" if current else "rewards.wallet_link", target=wallet,
                     details={"address": address, "previous": current.address if current else None,
                              "effective_at": wallet.effective_at.isoformat()})
    return wallet


def wallets_effective_at(moment) -> dict[int, str]:
    """{user_id: payout address} at `moment` (latest wallet with effective_at <= moment)."""
    chosen: dict[int, tuple] = {}
    for user_id, address, effective in Wallet.objects.filter(effective_at__lte=moment).values_list(
            "user_id", "address", "effective_at"):
        if user_id not in chosen or effective > chosen[user_id][1]:
            chosen[user_id] = (address, effective)
    return {user_id: address for user_id, (address, _) in chosen.items()}


# --- Epoch close ----------------------------------------------------------------------------------------

class EpochBlocked(Exception):
    """The close cannot go on without a person (a chain disagreement was reported)."""


def epoch_close(*, actor=None, client=None) -> Epoch | None:
    """Close an epoch: resume an unfinished one, or freeze a new one and drive it to `closed`.
    Returns None when there was nothing to pay. Safe to run again at any point (it resumes)."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    epoch = Epoch.objects.exclude(state=EpochState.CLOSED).order_by("number").first()
    if epoch is None:
        fees_settle_pending()  # so the epoch pays every fee recorded before it closes
        epoch = _epoch_freeze(deployment=deployment, actor=actor)
        if epoch is None:
            return None
    return epoch_resume(epoch_id=epoch.pk, client=client)


def _epoch_freeze(*, deployment, actor) -> Epoch | None:
    """Freeze every unfrozen share of users with a payout wallet into a new epoch, except users with an
    open `EarningsHold` (all their shares wait, still in the ledger, for a later epoch) and shares a
    confirmed hold withheld (never frozen). Held users get no allocation, so their cumulative amount in
    the tree stays where it was; once released, the next epoch adds everything they earned meanwhile."""
    now = timezone.now()
    addresses = wallets_effective_at(now)
    with transaction.atomic():
        held = set(EarningsHold.objects.filter(state=HoldState.HELD).values_list("user_id", flat=True))
        payable = [user_id for user_id in addresses if user_id not in held]
        rows = list(SettlementShare.objects.select_for_update().filter(
            epoch__isnull=True, withheld_by__isnull=True, user_id__in=payable).values_list(
            "id", "user_id", "role", "amount"))
        per_user: dict[int, dict[str, int]] = defaultdict(lambda: {ShareRole.OWNER: 0, ShareRole.CONTRIBUTOR: 0})
        for _, user_id, role, amount in rows:
            per_user[user_id][role] += amount
        per_user = {u: r for u, r in per_user.items() if sum(r.values()) > 0}
        if not per_user:
            return None
        number = (Epoch.objects.aggregate(n=Max("number"))["n"] or 0) + 1
        epoch = Epoch.objects.create(number=number, deployment=deployment, frozen_at=now,
                                     increase=sum(sum(r.values()) for r in per_user.values()))
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 500):
            SettlementShare.objects.filter(id__in=ids[start:start + 500]).update(epoch=epoch)
        pairs = [(kind, u) for u in per_user for kind in
                 (AccountKind.EARNINGS, AccountKind.OWNER_EARNINGS, AccountKind.PENDING)]
        accounts = ledger.accounts_get(pairs)
        lines = []
        for user_id, roles in per_user.items():
            lines += [(accounts[ledger.account_key(AccountKind.EARNINGS, user_id)], -roles[ShareRole.CONTRIBUTOR]),
                      (accounts[ledger.account_key(AccountKind.OWNER_EARNINGS, user_id)], -roles[ShareRole.OWNER]),
                      (accounts[ledger.account_key(AccountKind.PENDING, user_id)], sum(roles.values()))]
        ledger.post(idempotency_key=f"freeze:epoch:{number}", kind=LedgerTransaction.Kind.FREEZE, lines=lines,
                    memo=f"epoch {number} freeze")
        PayoutAllocation.objects.bulk_create([
            PayoutAllocation(epoch=epoch, user_id=u, address=addresses[u], amount=sum(r.values()))
            for u, r in per_user.items()])
        audit_record(actor=actor, action="rewards.epoch_freeze", target=epoch,
                     details={"number": number, "accounts": len(per_user), "increase": str(epoch.increase)})
    return epoch


def _advance(epoch: Epoch, to_state: str, **fields) -> Epoch:
    """Persist a step's result and the next state (compare-and-set on the state)."""
    updated = Epoch.objects.filter(pk=epoch.pk, state=epoch.state).update(state=to_state, last_error="", **fields)
    if not updated:
        raise EpochBlocked(f"epoch {epoch.number} moved on underneath this close")
    epoch.refresh_from_db()
    return epoch


def _step_build_tree(epoch: Epoch, client) -> Epoch:
    from rewards.chain import CumulativeRewardsTree

    cumulative = ledger.grouped_sums(
        PayoutAllocation.objects.filter(epoch__deployment=epoch.deployment, epoch__number__lte=epoch.number), "address")
    owners = dict(PayoutAllocation.objects.filter(epoch__deployment=epoch.deployment,
                                                  epoch__number__lte=epoch.number).values_list("address", "user_id"))
    tree = CumulativeRewardsTree.build(sorted(cumulative.items()))
    with transaction.atomic():
        PayoutLeaf.objects.filter(epoch=epoch).exists() or PayoutLeaf.objects.bulk_create([
            PayoutLeaf(epoch=epoch, address=entry.account, user_id=owners[entry.account],
                       cumulative_amount=entry.cumulative_amount, proof=tree.proof_hex(entry.account))
            for entry in tree.entries()])
        return _advance(epoch, EpochState.TREE_BUILT, root=tree.root_hex, tree_hash="0x" + tree.dump_hash().hex(),
                        tree_dump=tree.dump_json(), total_cumulative=tree.total_cumulative)


def _step_fund(epoch: Epoch, client) -> Epoch:
    """Top the distributor up to the tree's total. Checks the chain first: if the money is already
    there (a crash after the transfer), nothing is sent again."""
    token, distributor = contracts(epoch.deployment, client)
    available = token.balance_of(distributor.address) + distributor.total_claimed()
    shortfall = epoch.total_cumulative - available
    if shortfall <= 0:
        return _advance(epoch, EpochState.FUNDED, funded_amount=epoch.funded_amount or epoch.increase)
    treasury_balance = token.balance_of(client.address)
    if treasury_balance < shortfall:
        raise EpochBlocked(f"The treasury {client.address} holds {format_open(treasury_balance)} OPEN; epoch "
                           f"{epoch.number} needs {format_open(shortfall)} more in the distributor.")
    result = token.transfer(distributor.address, shortfall)
    return _advance(epoch, EpochState.FUNDED, funding_tx_hash=result.tx_hash, funded_amount=shortfall)


def _step_post_root(epoch: Epoch, client) -> Epoch:
    """Post the root unless the chain already has it (a crash after posting)."""
    _, distributor = contracts(epoch.deployment, client)
    on_chain_epoch, on_chain_root = distributor.epoch(), "0x" + distributor.merkle_root().hex()
    if on_chain_epoch == epoch.number and on_chain_root == epoch.root:
        return _advance(epoch, EpochState.ROOT_POSTED)
    if on_chain_epoch >= epoch.number:
        report_issue(kind="root_mismatch", fingerprint=f"root:{epoch.deployment_id}:{epoch.number}", epoch=epoch,
                     deployment=epoch.deployment,
                     detail=f"The distributor is at epoch {on_chain_epoch} with root {on_chain_root}; epoch "
                            f"{epoch.number} wants root {epoch.root}. Not posted.",
                     data={"on_chain_epoch": on_chain_epoch, "on_chain_root": on_chain_root})
        raise EpochBlocked(f"distributor already at epoch {on_chain_epoch}; see reconciliation issues")
    result = distributor.set_merkle_root(bytes.fromhex(epoch.root[2:]), epoch.number, epoch.total_cumulative,
                                         bytes.fromhex(epoch.tree_hash[2:]))
    return _advance(epoch, EpochState.ROOT_POSTED, root_tx_hash=result.tx_hash)


def _relay_claims(*, epoch: Epoch, client, addresses=None, threshold: int = 1) -> tuple[str, int]:
    _, distributor = contracts(epoch.deployment, client)
    leaves = PayoutLeaf.objects.filter(epoch=epoch)
    if addresses is not None:
        leaves = leaves.filter(address__in=list(addresses))
    due = [ClaimRequest(leaf.address, leaf.cumulative_amount, [bytes.fromhex(p[2:]) for p in leaf.proof])
           for leaf in leaves if leaf.cumulative_amount - distributor.claimed(leaf.address) >= threshold]
    last_hash = ""
    batch = settings.REWARDS_RELAY_BATCH
    for start in range(0, len(due), batch):
        last_hash = distributor.claim_many(due[start:start + batch]).tx_hash
    return last_hash, len(due)


def _step_relay(epoch: Epoch, client) -> Epoch:
    threshold = settings.REWARDS_RELAY_THRESHOLD
    if not threshold:
        return _advance(epoch, EpochState.RELAYED)
    tx_hash, count = _relay_claims(epoch=epoch, client=client, threshold=threshold)
    return _advance(epoch, EpochState.RELAYED, relay_tx_hash=tx_hash, relayed_accounts=count)


def _step_finish(epoch: Epoch, client) -> Epoch:
    with transaction.atomic():
        epoch = _advance(epoch, EpochState.CLOSED, closed_at=timezone.now())
        audit_record(actor=None, action="rewards.epoch_close", target=epoch,
                     details={"number": epoch.number, "root": epoch.root, "total": str(epoch.total_cumulative)})
    return epoch


# The close as a state machine: state -> the step that takes it to the next state. Each step checks the
# chain before acting, so re-running one after a crash never pays twice.
EPOCH_STEPS = {
    EpochState.FROZEN: _step_build_tree,
    EpochState.TREE_BUILT: _step_fund,
    EpochState.FUNDED: _step_post_root,
    EpochState.ROOT_POSTED: _step_relay,
    EpochState.RELAYED: _step_finish,
}


def epoch_resume(*, epoch_id: int, client=None) -> Epoch:
    client = client or get_chain_client()
    epoch = Epoch.objects.select_related("deployment").get(pk=epoch_id)
    if epoch.state == EpochState.CLOSED:
        return epoch
    current = deployment_ensure(client=client)
    if epoch.deployment_id != current.pk:
        report_issue(kind="epoch_on_lost_chain", fingerprint=f"lost_epoch:{epoch.pk}", epoch=epoch,
                     deployment=epoch.deployment,
                     detail=f"Epoch {epoch.number} ({epoch.state}) belongs to a deployment that is no longer on chain.")
        raise EpochBlocked(f"epoch {epoch.number} belongs to a chain that is gone; see reconciliation issues")
    token = uuid.uuid4().hex
    now = timezone.now()
    if not Epoch.objects.filter(pk=epoch.pk).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
            lease_owner=token, lease_until=now + timedelta(seconds=settings.REWARDS_EPOCH_LEASE_S)):
        raise EpochBlocked(f"epoch {epoch.number} is being closed by another process")
    try:
        while epoch.state != EpochState.CLOSED:
            try:
                epoch = EPOCH_STEPS[epoch.state](epoch, client)
            except Exception as exc:
                Epoch.objects.filter(pk=epoch.pk).update(last_error=f"{epoch.state}: {exc}"[:2000])
                raise
    finally:
        Epoch.objects.filter(pk=epoch.pk, lease_owner=token).update(lease_owner="", lease_until=None)
    return epoch


# --- Claims ---------------------------------------------------------------------------------------------

def claims_index(*, client=None) -> int:
    """Book `Claimed` events (pending → paid out) exactly once per (tx hash, log index). A claim the
    ledger cannot explain is reported, not booked. Returns the number booked."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    _, distributor = contracts(deployment, client)
    cursor = _cursor(deployment, "claims")
    page = distributor.claimed_events(cursor.next_block)
    booked = 0
    for event in page.events:
        tx_hash, log_index = event.position.key
        if ChainClaim.objects.filter(deployment=deployment, tx_hash=tx_hash, log_index=log_index).exists():
            continue
        user = _user_by_address(event.account)
        try:
            with transaction.atomic():
                txn = None
                pending = ledger.balance(kind=AccountKind.PENDING, user=user) if user else 0
                if user is not None and pending >= event.amount:
                    accounts = ledger.accounts_get([(AccountKind.PENDING, user.pk), (AccountKind.PAID_OUT, user.pk)])
                    txn = ledger.post(idempotency_key=f"claim:{deployment.pk}:{tx_hash}:{log_index}",
                                      kind=LedgerTransaction.Kind.CLAIM, memo=f"claimed by {event.account}",
                                      lines=[(accounts[ledger.account_key(AccountKind.PENDING, user.pk)], -event.amount),
                                             (accounts[ledger.account_key(AccountKind.PAID_OUT, user.pk)], event.amount)])
                    booked += 1
                else:
                    report_issue(kind="unexplained_claim", fingerprint=f"claim:{deployment.pk}:{tx_hash}:{log_index}",
                                 deployment=deployment,
                                 detail=f"{event.account} claimed {format_open(event.amount)} OPEN (tx {tx_hash}) but "
                                        f"the ledger has {format_open(pending)} OPEN pending for it; not booked.",
                                 data={"tx_hash": tx_hash, "amount": str(event.amount), "account": event.account})
                ChainClaim.objects.create(deployment=deployment, tx_hash=tx_hash, log_index=log_index,
                                          block_number=event.position.block_number, address=event.account,
                                          amount=event.amount, cumulative=event.cumulative, user=user, transaction=txn)
        except IntegrityError:
            continue
    if page.to_block >= page.from_block:
        ChainCursor.objects.filter(pk=cursor.pk).update(next_block=page.to_block + 1)
    return booked


def claim_relay(*, user, client=None) -> dict:
    """"Claim for me": the platform submits the user's claims (tokens still go to the user's address)."""
    client = client or get_chain_client()
    from .selectors import claims_for

    claims = [c for c in claims_for(user=user) if c["claimable"] > 0]
    relayed = 0
    last = ""
    for claim in claims:
        epoch = Epoch.objects.get(deployment_id=claim["deployment_id"], number=claim["epoch"])
        tx_hash, count = _relay_claims(epoch=epoch, client=client, addresses=[claim["address"]])
        relayed += count
        last = tx_hash or last
    if relayed:
        with transaction.atomic():
            audit_record(actor=user, action="rewards.claim_relay", object_type="accounts.user", object_id=user.pk,
                         details={"accounts": relayed, "tx_hash": last})
        claims_index(client=client)
    return {"relayed": relayed, "tx_hash": last}


# --- Reconciliation ------------------------------------------------------------------------------------

def chain_reconcile(*, client=None) -> list:
    """Compare the database with the chain: root per epoch, distributor funding, claimed per account.
    Each disagreement becomes an open `ReconciliationIssue` (logged); nothing is patched."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    claims_index(client=client)
    token, distributor = contracts(deployment, client)
    block = client.confirmed_block_number()
    issues = []

    def at(contract, name, *args):
        return contract.contract.functions[name](*args).call(block_identifier=block)

    posted = Epoch.objects.filter(deployment=deployment, state__in=[EpochState.ROOT_POSTED, EpochState.RELAYED,
                                                                    EpochState.CLOSED]).order_by("-number").first()
    chain_epoch, chain_root = at(distributor, "epoch"), "0x" + bytes(at(distributor, "merkleRoot")).hex()
    if posted is None and chain_epoch != 0 or posted is not None and (chain_epoch, chain_root) != (posted.number, posted.root):
        issues.append(report_issue(
            kind="root_mismatch", fingerprint=f"reconcile_root:{deployment.pk}:{chain_epoch}:{chain_root}",
            deployment=deployment, epoch=posted,
            detail=f"Chain has epoch {chain_epoch} root {chain_root}; the database's last posted epoch is "
                   f"{posted.number if posted else 'none'} with root {posted.root if posted else '-'}."))
    funded = Epoch.objects.filter(deployment=deployment).exclude(
        state__in=[EpochState.FROZEN, EpochState.TREE_BUILT]).order_by("-number").first()
    expected_funding = funded.total_cumulative if funded else 0
    balance = at(token, "balanceOf", distributor.address)
    total_claimed = at(distributor, "totalClaimed")
    if balance + total_claimed != expected_funding:
        issues.append(report_issue(
            kind="funding_mismatch", fingerprint=f"funding:{deployment.pk}:{balance}:{total_claimed}:{expected_funding}",
            deployment=deployment,
            detail=f"Distributor balance {format_open(balance)} + claimed {format_open(total_claimed)} OPEN != "
                   f"funded {format_open(expected_funding)} OPEN recorded in the database."))
    booked = ledger.grouped_sums(ChainClaim.objects.filter(deployment=deployment), "address")
    addresses = set(PayoutLeaf.objects.filter(epoch__deployment=deployment).values_list("address", flat=True)) | set(booked)
    for address in sorted(addresses):
        on_chain = at(distributor, "claimed", address)
        if on_chain != booked.get(address, 0):
            issues.append(report_issue(
                kind="claimed_mismatch", fingerprint=f"claimed:{deployment.pk}:{address}:{on_chain}",
                deployment=deployment,
                detail=f"{address} has claimed {format_open(on_chain)} OPEN on chain; the database recorded "
                       f"{format_open(booked.get(address, 0))} OPEN.", data={"address": address}))
    return [issue for issue in issues if issue is not None]


# --- Demo -----------------------------------------------------------------------------------------------

def demo_seed(*, users_by_role: dict) -> None:
    """Idempotent demo data: 1,000 OPEN credit for each demo user and a few settled inferences."""
    for role, user in users_by_role.items():
        credit_grant(actor=None, user=user, amount=1_000 * OPEN, reason="Demo credit",
                     idempotency_key=f"demo:{role}:{user.pk}")
    owner, payer = users_by_role.get("owner"), users_by_role.get("user")
    contributors = [users_by_role[r] for r in ("contributor", "contributor2") if r in users_by_role]
    if not (owner and payer and contributors):
        return
    for n in range(5):
        weight = 600_000 if len(contributors) > 1 else PPM
        shares = {contributors[0].pk: weight}
        if len(contributors) > 1:
            shares[contributors[1].pk] = PPM - weight
        fee_settle(inference_id=f"demo-inference-{n}", payer=payer, model_owner=owner, fee=(n + 1) * OPEN // 10,
                   contributor_shares=shares, model_version_hash="demo" + "0" * 60, receipt_id=f"demo-receipt-{n}",
                   contributor_rows={c.pk: [f"demo-row-{n}-{i}" for i in range(3)] for c in contributors})
