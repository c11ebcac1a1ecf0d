"""Slashed OPEN leaves the stakes contract for the treasury that pays it out.

`slash_book` books a slash as the Datanet's honest contributors' earnings; the next epoch close pays them by
topping the distributor up from the treasury (the platform's key, `epochs._step_fund`). Until the slashed OPEN
itself leaves the Datanet's pool in ContributorStakes, the treasury pays those earnings from its own OPEN. So
each booked slash is released, once: `releasePool(datanet, treasury, amount)`, recorded as a `SlashRelease`.

`releasePool` takes no id the contract could refuse twice, so a lost answer is settled by the chain's own
account of the pool: every release of a pool gets its place in the pool's order when it is recorded
(`released_through`, what the pool has paid out in all once it is done). A run adds up the pool's
`PoolReleased` events up to the chain's head first: a release whose `released_through` is reached is done (the
transaction that reached it is recorded) and nothing is sent; otherwise exactly the missing amount is sent.
Releases of one pool go in order, and a failure stops that pool until the next run. A send that timed out is
waited for while the node still holds it, never sent beside it. One run at a time reads and sends a pool's
releases (a lease on the pool's first release): two side by side would both see the same amount missing.

Reconciliation (`slash_releases_reconcile`, run by `chain_reconcile` through governance) reports a pool whose
booked slashes, recorded releases and on-chain releases disagree, and a release paid to another address.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.services import AuditAction, audit_record

from ..chain import ChainRevert
from ..chain.errors import TransactionTimeout
from ..chain.staking import PoolRelease, StakingContract, stake_refusal
from ..chainio import report_issue
from ..ledger import format_open
from ..models import ReleaseState, SlashBooking, SlashRelease

logger = logging.getLogger("rewards.chain")
RECORD_TRIES = 5  # concurrent recorders of one pool collide on its order constraint; each retry re-reads it
LEASE_MARGIN_S = 60  # a pool's lease: twice the receipt timeout plus this (estimate, broadcast retries, reads)


def slash_release_sources() -> set[str]:
    """Stakes contracts that release pools to the treasury: their transfers are not users' deposits."""
    return set(SlashRelease.objects.values_list("staking_address", flat=True).distinct())


def _record(*, booking: SlashBooking, staking_address: str, recipient: str) -> SlashRelease:
    """The booking's release, recorded once with its place in its pool's order."""
    for _ in range(RECORD_TRIES):
        existing = SlashRelease.objects.filter(key=booking.key).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                before = SlashRelease.objects.filter(staking_address=staking_address, datanet_id=booking.datanet_id
                                                     ).aggregate(through=Max("released_through"))["through"]
                return SlashRelease.objects.create(
                    booking=booking, key=booking.key, staking_address=staking_address, datanet_id=booking.datanet_id,
                    recipient=recipient, amount=booking.amount, released_through=int(before or 0) + int(booking.amount))
        except IntegrityError:  # a concurrent run recorded this booking, or another one in this place: re-read
            continue
    return SlashRelease.objects.get(key=booking.key)


def slash_releases_send(*, staking: StakingContract, bookings, from_block: int,
                        treasury: str | None = None) -> list[SlashRelease]:
    """Release each of `bookings` (slashes made on `staking`) from its Datanet's pool to `treasury`, once; retry
    releases not done. Returns the releases touched. The treasury defaults to the platform's key, the account
    the epoch close tops the distributor up from (`epochs._step_fund`). Safe to run again, side by side or after
    a lost answer: see the module's docstring."""
    treasury = treasury or staking.client.address
    for booking in bookings:
        _record(booking=booking, staking_address=staking.address, recipient=treasury)
    pools = sorted(set(SlashRelease.objects.filter(staking_address=staking.address).exclude(
        state=ReleaseState.DONE).values_list("datanet_id", flat=True)))
    # A run holds a pool while it reads and sends: one that crashed lets go when its lease ends.
    lease = timedelta(seconds=2 * staking.client.policy.receipt_timeout_s + LEASE_MARGIN_S)
    touched = []
    for datanet_id in pools:
        holder = _pool_claim(staking_address=staking.address, datanet_id=datanet_id, lease=lease)
        if holder is None:
            continue  # another run is sending this pool's releases
        try:
            releases = list(SlashRelease.objects.filter(staking_address=staking.address, datanet_id=datanet_id)
                            .exclude(state=ReleaseState.DONE).order_by("released_through"))
            touched += _send_pool(staking=staking, datanet_id=datanet_id, releases=releases, from_block=from_block)
        finally:
            SlashRelease.objects.filter(pk=holder).update(pool_lease_until=None)
    return touched


def _pool_claim(*, staking_address: str, datanet_id: int, lease: timedelta) -> int | None:
    """Hold the pool (a lease on its first release, taken by one conditional update); None: held by another."""
    first = (SlashRelease.objects.filter(staking_address=staking_address, datanet_id=datanet_id)
             .order_by("released_through").values_list("pk", flat=True).first())
    now = timezone.now()
    taken = SlashRelease.objects.filter(pk=first).filter(
        Q(pool_lease_until__isnull=True) | Q(pool_lease_until__lt=now)).update(pool_lease_until=now + lease)
    return first if taken else None


def _send_pool(*, staking: StakingContract, datanet_id: int, releases: list[SlashRelease],
               from_block: int) -> list[SlashRelease]:
    """The releases of one pool, in order; stops at the first that is not done."""
    touched = []
    if not releases:
        return touched
    try:
        events = staking.pool_releases(from_block, "latest", datanet_id=datanet_id).events
    except Exception as exc:  # noqa: BLE001 - no answer from the chain: send nothing, the next run reads again
        logger.warning("pool %s of %s: could not read its releases (%s)", datanet_id, staking.address, exc)
        return touched
    released = sum(event.amount for event in events)
    for release in releases:
        through = int(release.released_through)
        if released >= through:  # on chain already (an earlier try's answer was lost): record the transaction
            event = _reaching(events, through)
            touched.append(_done(release, tx_hash=event.position.tx_hash, block_number=event.position.block_number))
            continue
        if released < through - int(release.amount):
            # An earlier release of this pool is recorded as done but the chain has not paid it: reconciliation
            # reports it; sending now would pay this one's amount under the earlier one's place.
            touched.append(_failed(release, f"The pool has released {format_open(released)} OPEN on chain; the "
                                            f"releases before this one add up to "
                                            f"{format_open(through - int(release.amount))} OPEN. Run chain_reconcile."))
            break
        if release.tx_hash and release.state == ReleaseState.FAILED and _still_pending(staking, release.tx_hash):
            touched.append(release)  # an earlier send is still in the node's pool: wait for it, never send beside it
            break
        sent = _send(staking, release, amount=through - released)
        touched.append(sent)
        if sent.state != ReleaseState.DONE:
            break
        released = through
    return touched


def _still_pending(staking: StakingContract, tx_hash: str) -> bool:
    try:
        return staking.transaction_pending(tx_hash)
    except Exception:  # noqa: BLE001 - the node cannot say: treat it as pending, the next run asks again
        return True


def _send(staking: StakingContract, release: SlashRelease, *, amount: int) -> SlashRelease:
    SlashRelease.objects.filter(pk=release.pk).update(attempts=release.attempts + 1)
    release.attempts += 1
    try:
        result = staking.release_pool(release.datanet_id, release.recipient, amount)
    except ChainRevert as revert:
        return _failed(release, stake_refusal(revert) or f"The stakes contract refused the release: {revert}.")
    except TransactionTimeout as exc:
        return _failed(release, f"The release was sent ({exc.tx_hash}) but not confirmed in time; the next run waits "
                                "for it while the node still holds it.", tx_hash=exc.tx_hash)
    except Exception as exc:  # transport faults: unknown outcome; the next run asks the chain before sending again
        logger.exception("release of slash %s failed", release.key)
        return _failed(release, f"The chain did not confirm it ({type(exc).__name__}: {exc}); the next run adds up "
                                "the pool's releases on chain before sending again.")
    return _done(release, tx_hash=result.tx_hash, block_number=result.block_number)


def _reaching(events: list[PoolRelease], through: int) -> PoolRelease:
    """The release event with which the pool's running total first reached `through` (the caller checked that
    the events add up to at least that)."""
    total = 0
    for event in events:
        total += event.amount
        if total >= through:
            return event
    raise ValueError(f"the pool's releases never reach {through}")


def _done(release: SlashRelease, *, tx_hash: str, block_number: int) -> SlashRelease:
    with transaction.atomic():
        updated = SlashRelease.objects.filter(pk=release.pk).exclude(state=ReleaseState.DONE).update(
            state=ReleaseState.DONE, tx_hash=tx_hash, block_number=block_number, error="", finished_at=timezone.now())
        if updated:
            audit_record(actor=None, action=AuditAction.REWARDS_SLASH_RELEASED, target=release, details={
                "key": release.key, "datanet_id": release.datanet_id, "amount": str(release.amount),
                "released_through": str(release.released_through), "to": release.recipient, "tx_hash": tx_hash,
                "attempts": release.attempts})
    release.refresh_from_db()
    return release


def _failed(release: SlashRelease, reason: str, *, tx_hash: str = "") -> SlashRelease:
    with transaction.atomic():
        fields = {"state": ReleaseState.FAILED, "error": reason[:2000]}
        if tx_hash:
            fields["tx_hash"] = tx_hash
        SlashRelease.objects.filter(pk=release.pk).exclude(state=ReleaseState.DONE).update(**fields)
        audit_record(actor=None, action=AuditAction.REWARDS_SLASH_RELEASE_FAILED, target=release,
                     details={"key": release.key, "reason": reason[:500], "tx_hash": tx_hash})
    release.refresh_from_db()
    return release


def slash_releases_reconcile(*, staking: StakingContract, bookings, from_block: int, deployment=None) -> list:
    """Compare, per Datanet pool of `staking`: the booked slashes (`bookings`, those made on this contract), the
    releases the books record as done, and what the pool released on chain (confirmed blocks); and each done
    release's transaction against the chain's. Each difference is an open `ReconciliationIssue`."""
    booked, recorded, unreleased = defaultdict(int), defaultdict(int), defaultdict(int)
    done = list(SlashRelease.objects.filter(staking_address=staking.address, state=ReleaseState.DONE))
    for release in done:
        recorded[release.datanet_id] += int(release.amount)
    done_keys = {release.key for release in done}
    for booking in bookings:
        booked[booking.datanet_id] += int(booking.amount)
        unreleased[booking.datanet_id] += booking.key not in done_keys
    events = staking.pool_releases(from_block).events
    on_chain, by_tx = defaultdict(int), {}
    for event in events:
        on_chain[event.datanet_id] += event.amount
        by_tx[event.position.tx_hash] = event
    issues = []
    for datanet_id in sorted(set(booked) | set(recorded) | set(on_chain)):
        figures = (booked[datanet_id], recorded[datanet_id], on_chain[datanet_id])
        if len(set(figures)) == 1:
            continue
        waiting = unreleased[datanet_id]
        issues.append(report_issue(
            kind="slash_release_mismatch", deployment=deployment,
            fingerprint=f"slash_release:{staking.address}:{datanet_id}:{':'.join(map(str, figures))}",
            detail=f"Datanet {datanet_id}: slashes booked to its contributors add up to {format_open(figures[0])} "
                   f"OPEN; the books record {format_open(figures[1])} OPEN released from its pool; the stakes "
                   f"contract has released {format_open(figures[2])} OPEN on chain"
                   + (f" ({waiting} booked slash(es) not released yet: the governance beat sends them)." if waiting else "."),
            data={"datanet_id": datanet_id, "booked": str(figures[0]), "recorded": str(figures[1]),
                  "on_chain": str(figures[2])}))
    for release in done:
        event = by_tx.get(release.tx_hash)
        if event is not None and event.to.lower() == release.recipient.lower():
            continue
        where = f"paid to {event.to}" if event is not None else "not among the pool's confirmed releases"
        issues.append(report_issue(
            kind="slash_release_mismatch", deployment=deployment,
            fingerprint=f"slash_release_tx:{release.key}:{release.tx_hash}",
            detail=f"The release of slash {release.key[:12]}… is recorded as done in {release.tx_hash or '-'} to "
                   f"{release.recipient}; on chain that transaction is {where}.",
            data={"key": release.key, "tx_hash": release.tx_hash}))
    return [issue for issue in issues if issue is not None]
