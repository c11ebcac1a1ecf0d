"""OPEN credit, which pays for inferences: an admin's grant (`credit_grant`), a new account's one-time
starter grant (`credit_starter_grant`) and on-chain deposits to the deposit address (`deposits_index`).
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.services import AuditAction, audit_record

from .. import ledger
from ..amounts import AmountError, parse_open
from ..chain_records import cursor_advance
from ..chainio import ZERO_ADDRESS, contracts, deployment_ensure, get_chain_client, report_issue
from ..ledger import format_open
from ..models import AccountKind, ChainDeposit, CreditGrant, LedgerTransaction, PromotionalCredit
from .chain_events import _cursor, _user_by_address
from .slash_releases import slash_release_sources


def credit_grant(*, actor, user, amount: int, reason: str, idempotency_key: str | None = None,
                 audit_action: AuditAction = AuditAction.REWARDS_CREDIT_GRANT, promotional: bool = False) -> CreditGrant:
    """An admin grants OPEN credit (from the grants account). Audited; idempotent per key.

    `promotional` credit (every starter grant; an admin may mark a grant so) pays for inferences like any
    credit, but a fee paid with it earns nobody: its amount goes back to the grants account (`fee_record`
    spends promotional credit first). Otherwise one free account per grant, spent on one's own model,
    would come back as claimable owner and contributor earnings: a faucet."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError({"amount": "Grant a positive int amount in base units."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the credit is granted; it is kept in the audit trail."})
    key = f"grant:{idempotency_key or uuid.uuid4().hex}"
    existing = CreditGrant.objects.filter(transaction__idempotency_key=key).first()
    if existing:
        return existing
    # Not durable: the starter grant runs from the sign-up signal, inside whatever transaction sent it.
    with transaction.atomic():
        accounts = ledger.accounts_get([(AccountKind.CREDIT, user.pk), (AccountKind.GRANTS, None)])
        credit = accounts[ledger.account_key(AccountKind.CREDIT, user.pk)]
        type(credit).objects.select_for_update().filter(pk=credit.pk).first()
        txn = ledger.post(idempotency_key=key, kind=LedgerTransaction.Kind.GRANT, memo=reason,
                          lines=[(accounts["grants"], -amount), (credit, amount)])
        grant = CreditGrant.objects.create(user=user, amount=amount, reason=reason[:200], transaction=txn,
                                           granted_by=actor if getattr(actor, "pk", None) else None,
                                           promotional=promotional)
        if promotional:
            promo, _ = PromotionalCredit.objects.select_for_update().get_or_create(user=user)
            promo.remaining = int(promo.remaining) + amount
            promo.save(update_fields=["remaining"])
        audit_record(actor=actor, action=audit_action, target=grant,
                     details={"user": user.pk, "amount": str(amount), "reason": reason, "promotional": promotional})
    return grant


STARTER_GRANT_REASON = "Starter credit for a new account"


def starter_grant_amount() -> int:
    """`REWARDS_STARTER_GRANT_OPEN` in base units (0: no starter grant)."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        return parse_open(settings.REWARDS_STARTER_GRANT_OPEN)
    except AmountError as exc:
        raise ImproperlyConfigured(f"REWARDS_STARTER_GRANT_OPEN: {exc}") from exc


def credit_starter_grant(*, user) -> CreditGrant | None:
    """Grant a new account its one-time starter inference credit (`REWARDS_STARTER_GRANT_OPEN`) from the
    grants account, audited as `rewards.starter_grant`. Called when an account signs up (the
    `user_signed_up` receiver in `rewards.apps`). Once per user whatever happens: the ledger
    transaction's idempotency key is `grant:starter:<user id>` (unique), so a repeat or a concurrent
    second call returns the first grant. Returns None when the setting is 0."""
    amount = starter_grant_amount()
    if amount <= 0:
        return None
    key = f"starter:{user.pk}"
    try:
        return credit_grant(actor=None, user=user, amount=amount, reason=STARTER_GRANT_REASON, idempotency_key=key,
                            audit_action=AuditAction.REWARDS_STARTER_GRANT, promotional=True)
    except IntegrityError:
        # A concurrent call booked it first (same idempotency key): that grant is this user's one.
        return CreditGrant.objects.get(transaction__idempotency_key=f"grant:{key}")


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
    platform = {ZERO_ADDRESS, distributor.address, *slash_release_sources()}
    for event in page.events:
        if event.sender in platform:
            continue  # the mint, a distributor payout or a slashed stake's pool released to the treasury: no deposit
        tx_hash, log_index = event.position.key
        if ChainDeposit.objects.filter(deployment=deployment, tx_hash=tx_hash, log_index=log_index).exists():
            continue
        user = _user_by_address(event.sender)
        try:
            with transaction.atomic(durable=True):
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
                    audit_record(actor=None, action=AuditAction.REWARDS_DEPOSIT_CREDIT, target=deposit,
                                 details={"user": user.pk, "amount": str(event.amount), "sender": event.sender,
                                          "tx_hash": tx_hash, "log_index": log_index})
                    credited += 1
        except IntegrityError:
            continue  # another indexer booked it first
    if page.to_block >= page.from_block:
        cursor_advance(cursor, to_block=page.to_block)
    return credited
