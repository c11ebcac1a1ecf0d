"""The epoch close, a resumable state machine: freeze the payable earnings into a new epoch, build the
cumulative Merkle tree, fund the distributor, post the root, relay small claims, finish. Each step
checks the chain before acting, so a close resumed after a crash never pays twice (`EPOCH_STEPS`).
"""

import uuid
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from lineage import jobs
from notifications import notify
from rewards.chain import ChainError, ClaimRequest

from .. import ledger
from ..chainio import contracts, deployment_ensure, get_chain_client, report_issue
from ..ledger import format_open
from ..models import (
    AccountKind,
    EarningsHold,
    Epoch,
    EpochState,
    HoldState,
    LedgerTransaction,
    PayoutAllocation,
    PayoutLeaf,
    SettlementShare,
    ShareRole,
    SlashShare,
)
from .settlement import fees_settle_pending
from .wallets import wallets_effective_at


class EpochBlocked(jobs.ExpectedJobError):
    """The close cannot go on without a person (a chain disagreement was reported)."""


EPOCH_CLOSE_LABEL = "epoch close"  # names the job in messages and logs (`lineage.jobs`)


def epoch_close_due(*, now=None) -> bool:
    """Whether the beat should close an epoch now: the epoch length in force (a governance proposal's
    `setEpochLength`, else `REWARDS_EPOCH_LENGTH_S`) has passed since the last epoch froze, or no epoch was
    ever closed. A close that was stopped after too many attempts waits for a person ("Close an epoch now")."""
    from lineage.hooks import epoch_length_in_force  # governance registers it (governance/apps.py)

    now = now or timezone.now()
    last = Epoch.objects.order_by("-number").first()
    if last is None:
        return True
    if last.state != EpochState.CLOSED and last.attempts >= jobs.max_job_attempts() and (
            last.lease_until is None or last.lease_until < now):
        return False
    return last.frozen_at + timedelta(seconds=epoch_length_in_force()["seconds"]) <= now


def epoch_close(*, actor=None, client=None) -> Epoch | None:
    """Close an epoch: resume an unfinished one, or freeze a new one and drive it to `closed`.
    Returns None when there was nothing to pay. Safe to run again at any point (it resumes). A person
    (`actor`) running it again restarts the count of attempts of a close that was stopped."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    epoch = Epoch.objects.exclude(state=EpochState.CLOSED).order_by("number").first()
    if epoch is None:
        fees_settle_pending()  # so the epoch pays every fee recorded before it closes
        epoch = _epoch_freeze(deployment=deployment, actor=actor)
        if epoch is None:
            return None
    return epoch_resume(epoch_id=epoch.pk, client=client, retry=actor is not None)


def _epoch_freeze(*, deployment, actor) -> Epoch | None:
    """Freeze every unfrozen share (of fees, and of slashed stakes) of users with a payout wallet into a new
    epoch, except users with an open `EarningsHold` (all their shares wait, still in the ledger, for a later
    epoch) and shares a confirmed hold withheld (never frozen). Held users get no allocation, so their cumulative
    amount in the tree stays where it was; once released, the next epoch adds everything they earned meanwhile."""
    now = timezone.now()
    addresses = wallets_effective_at(now)
    with transaction.atomic():
        held = set(EarningsHold.objects.filter(state=HoldState.HELD).values_list("user_id", flat=True))
        payable = [user_id for user_id in addresses if user_id not in held]
        rows = list(SettlementShare.objects.select_for_update().filter(
            epoch__isnull=True, withheld_by__isnull=True, user_id__in=payable).values_list(
            "id", "user_id", "role", "amount"))
        # Shares of slashed stakes (`services.slash_book`) are contributor earnings like fee shares.
        slash_rows = list(SlashShare.objects.select_for_update().filter(
            epoch__isnull=True, user_id__in=payable).values_list("id", "user_id", "amount"))
        per_user: dict[int, dict[str, int]] = defaultdict(lambda: {ShareRole.OWNER: 0, ShareRole.CONTRIBUTOR: 0})
        for _, user_id, role, amount in rows:
            per_user[user_id][role] += amount
        for _, user_id, amount in slash_rows:
            per_user[user_id][ShareRole.CONTRIBUTOR] += amount
        per_user = {u: r for u, r in per_user.items() if sum(r.values()) > 0}
        if not per_user:
            return None
        number = (Epoch.objects.aggregate(n=Max("number"))["n"] or 0) + 1
        epoch = Epoch.objects.create(number=number, deployment=deployment, frozen_at=now,
                                     increase=sum(sum(r.values()) for r in per_user.values()))
        for model, ids in ((SettlementShare, [row[0] for row in rows]), (SlashShare, [row[0] for row in slash_rows])):
            for start in range(0, len(ids), 500):
                model.objects.filter(id__in=ids[start:start + 500]).update(epoch=epoch)
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
        audit_record(actor=actor, action=AuditAction.REWARDS_EPOCH_FREEZE, target=epoch,
                     details={"number": number, "accounts": len(per_user), "increase": str(epoch.increase)})
    return epoch


def _advance(epoch: Epoch, to_state: str, **fields) -> Epoch:
    """Persist a step's result and the next state (compare-and-set on the state)."""
    # The run that made progress is the first attempt at the next step (`epoch_resume` caps attempts).
    updated = Epoch.objects.filter(pk=epoch.pk, state=epoch.state).update(state=to_state, last_error="", attempts=1,
                                                                          **fields)
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
        audit_record(actor=None, action=AuditAction.REWARDS_EPOCH_CLOSE, target=epoch,
                     details={"number": epoch.number, "root": epoch.root, "total": str(epoch.total_cumulative)})
        notify.event(kind="epoch.closed", object_id=epoch.pk)
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


def epoch_resume(*, epoch_id: int, client=None, retry: bool = False) -> Epoch:
    """Drive the epoch to `closed` from its current step, under a lease (one close at a time). Each run
    counts an attempt at the step; after `JOB_MAX_ATTEMPTS` runs that made no progress the close stops
    with a reason for the admin (`retry=True`, a person running it again, starts the count afresh).
    A step's error is stored in `last_error`: chain errors and `EpochBlocked` as they are, anything else
    as a generic message with an error id (the details are logged), then raised for the task."""
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
    max_attempts = jobs.max_job_attempts()
    free = Epoch.objects.filter(pk=epoch.pk).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    if retry:
        free.filter(attempts__gte=max_attempts).update(attempts=0)
    if not free.update(lease_owner=token, lease_until=now + timedelta(seconds=settings.REWARDS_EPOCH_LEASE_S),
                       attempts=F("attempts") + 1):
        raise EpochBlocked(f"epoch {epoch.number} is being closed by another process")
    epoch.refresh_from_db()
    if epoch.attempts > max_attempts:
        _epoch_close_stop(epoch=epoch, token=token, max_attempts=max_attempts)
    try:
        while epoch.state != EpochState.CLOSED:
            try:
                epoch = EPOCH_STEPS[epoch.state](epoch, client)
            except Exception as exc:
                failure = jobs.job_failure(exc, label=EPOCH_CLOSE_LABEL, pk=epoch.pk, expected=(ChainError,))
                Epoch.objects.filter(pk=epoch.pk).update(last_error=f"{epoch.state}: {failure.message}"[:2000])
                raise
    finally:
        Epoch.objects.filter(pk=epoch.pk, lease_owner=token).update(lease_owner="", lease_until=None)
    return epoch


def _epoch_close_stop(*, epoch: Epoch, token: str, max_attempts: int) -> None:
    """Stop a close that made no progress in `max_attempts` runs: release the lease, say why (keeping
    the last step's error) and raise, so the task does not try again until a person does."""
    reason = jobs.attempts_exhausted_message(
        label=f"close of epoch {epoch.number}", attempts=max_attempts,
        cause=f"none of them got past the {epoch.state} step",
        action='Fix the cause (the reconciliation issues and the server logs say more), then run "Close an '
               'epoch now" in the admin to try again.')
    last_error = epoch.last_error if epoch.last_error.startswith(reason) else f"{reason} Last error: {epoch.last_error}"
    with transaction.atomic():
        Epoch.objects.filter(pk=epoch.pk, lease_owner=token).update(
            lease_owner="", lease_until=None, attempts=max_attempts, last_error=last_error[:2000])
        audit_record(actor=None, action=AuditAction.REWARDS_EPOCH_CLOSE_STOPPED, target=epoch,
                     details={"number": epoch.number, "state": epoch.state, "attempts": max_attempts})
    raise EpochBlocked(reason, code=jobs.TOO_MANY_ATTEMPTS_CODE)
