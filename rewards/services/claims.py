"""Claims: booking `Claimed` events from the distributor (`claims_index`) and "Claim for me", where the
platform submits a user's claims (`claim_relay`), queued by the page (`claim_relay_request`) and sent by
a `chain` worker (`claim_relay_run`).
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record

from .. import ledger
from ..chain_records import cursor_advance
from ..chainio import contracts, deployment_ensure, get_chain_client, report_issue
from ..ledger import format_open
from ..models import AccountKind, ChainClaim, ClaimRelay, Epoch, LedgerTransaction, RelayState
from .chain_events import _cursor, _user_by_address
from .epochs import _relay_claims

logger = logging.getLogger("rewards")


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
            with transaction.atomic(durable=True):
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
        cursor_advance(cursor, to_block=page.to_block)
    return booked


def claim_relay(*, user, client=None) -> dict:
    """"Claim for me": the platform submits the user's claims (tokens still go to the user's address)."""
    client = client or get_chain_client()
    from ..selectors import claims_for

    claims = [c for c in claims_for(user=user) if c["claimable"] > 0]
    relayed = 0
    last = ""
    for claim in claims:
        epoch = Epoch.objects.get(deployment_id=claim["deployment_id"], number=claim["epoch"])
        tx_hash, count = _relay_claims(epoch=epoch, client=client, addresses=[claim["address"]])
        relayed += count
        last = tx_hash or last
    if relayed:
        with transaction.atomic(durable=True):
            audit_record(actor=user, action=AuditAction.REWARDS_CLAIM_RELAY, object_type="accounts.user", object_id=user.pk,
                         details={"accounts": relayed, "tx_hash": last})
        claims_index(client=client)
    return {"relayed": relayed, "tx_hash": last}


@dataclass(frozen=True)
class ClaimRelayAsked:
    """What pressing "Claim for me" did. `relay` is the queued request (None when nothing was queued);
    `reason` is `queued`, `already_queued` or, with nothing claimable, one of `selectors.nothing_to_claim`'s."""

    relay: ClaimRelay | None
    reason: str
    message: str


def claim_relay_request(*, user) -> ClaimRelayAsked:
    """"Claim for me": queue a relay of the user's claimable OPEN for the `chain` queue (on commit) and
    return at once; the worker sends it (`claim_relay_run`) and /rewards/claim/ shows its state. Queues
    nothing when nothing is claimable (the result says why) or when one of theirs is already queued."""
    from ..selectors import claims_for, nothing_to_claim
    from ..tasks import chain_claim_relay

    claimable = sum(claim["claimable"] for claim in claims_for(user=user))
    if claimable <= 0:
        return ClaimRelayAsked(None, *nothing_to_claim(user=user))
    waiting = "the platform sends it shortly and the OPEN goes to your wallet; this page shows when it is confirmed."
    try:
        with transaction.atomic(durable=True):
            relay = ClaimRelay.objects.create(user=user, amount=claimable)
            audit_record(actor=user, action=AuditAction.REWARDS_CLAIM_RELAY_REQUEST, target=relay,
                         details={"amount": str(claimable)})
            chain_claim_relay.delay_on_commit(relay.pk)
    except IntegrityError:  # one is queued already (one queued relay per user)
        queued = ClaimRelay.objects.filter(user=user, state=RelayState.QUEUED).first()
        if queued is None:
            raise
        return ClaimRelayAsked(queued, "already_queued",
                               f"Your claim of {format_open(queued.amount)} OPEN is already queued: {waiting}")
    return ClaimRelayAsked(relay, "queued", f"Your claim of {format_open(claimable)} OPEN is queued: {waiting}")


def claim_relay_run(*, relay_id: int, client=None) -> ClaimRelay:
    """Send a queued "Claim for me" (the `chain` queue's task): relay the user's claims (`claim_relay`,
    which re-reads what is claimed on chain, so running it twice never pays twice) and record the outcome
    on the request. A failure is recorded (the user sees it and may ask again), not retried blindly."""
    relay = ClaimRelay.objects.select_related("user").get(pk=relay_id)
    if relay.state != RelayState.QUEUED:
        return relay
    try:
        result = claim_relay(user=relay.user, client=client)
    except Exception as exc:
        logger.exception("claim relay %s failed", relay.pk)
        with transaction.atomic(durable=True):
            ClaimRelay.objects.filter(pk=relay.pk, state=RelayState.QUEUED).update(
                state=RelayState.FAILED, error=str(exc)[:2000], finished_at=timezone.now())
            audit_record(actor=None, action=AuditAction.REWARDS_CLAIM_RELAY_FAILED, target=relay, details={"error": str(exc)[:500]})
    else:
        ClaimRelay.objects.filter(pk=relay.pk, state=RelayState.QUEUED).update(
            state=RelayState.DONE, relayed_accounts=result["relayed"], tx_hash=result["tx_hash"] or "",
            finished_at=timezone.now())
    relay.refresh_from_db()
    return relay
