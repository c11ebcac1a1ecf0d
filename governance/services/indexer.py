"""The indexer that mirrors the governor and the parameter registry.

* `governance_index(*, client=None)`: read `ProposalCreated`, `VoteCast`, `ProposalQueued`,
  `ProposalExecuted`, `ProposalCanceled` and the registry's `FeeSplitChanged`, `EpochLengthChanged` and
  `SharePolicyChanged` from confirmed blocks, each once by (transaction hash, log index); refresh the state
  and tallies of proposals still open from the governor; turn a fee split set on chain into a new rewards
  fee-policy version (through `rewards.services.fee_policy_set`, audited), which applies from the next fee
  recorded, and an epoch length or share policy into a `GovernedValue` (audited), which the epoch close
  schedule and attribution read from then on.
"""

import logging
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.services import AuditAction, audit_record
from rewards import services as rewards_services
from rewards.chain.governance import (
    FEE_SPLIT,
    FINAL_STATES,
    SUPPORT_NAMES,
    EpochLengthChangedEvent,
    FeeSplitChangedEvent,
    ProposalCanceledEvent,
    ProposalCreatedEvent,
    ProposalExecutedEvent,
    ProposalQueuedEvent,
    SharePolicyChangedEvent,
    VoteCastEvent,
    change_from_calls,
)
from rewards.chain_records import cursor_advance, cursor_get
from rewards.chainio import get_chain_client

from ..chainio import contracts, deployment_ensure
from ..models import (
    ChangeKind,
    GovernanceCursor,
    GovernedParameter,
    GovernedValue,
    ParameterChange,
    Proposal,
    ProposalState,
    Vote,
)

logger = logging.getLogger("governance")
CURSOR = "governance"


def _cursor(deployment) -> GovernanceCursor:
    return cursor_get(GovernanceCursor, deployment=deployment, name=CURSOR, start_block=deployment.deployed_at_block)


def governance_index(*, client=None) -> int:
    """Mirror governance from the chain up to the confirmed block; returns the number of new events
    recorded. Safe to run twice or side by side: every event is recorded once, the cursor moves last."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    chain = contracts(deployment, client)
    cursor = _cursor(deployment)
    last = client.confirmed_block_number()
    recorded = 0
    if last >= cursor.next_block:
        events = (chain.governor.events(cursor.next_block, last).events
                  + chain.parameters.events(cursor.next_block, last).events)
        for event in sorted(events, key=lambda e: (e.position.block_number, e.position.log_index)):
            recorded += _record(deployment, chain, event)
    _refresh_open_proposals(deployment, chain, last)
    if last >= cursor.next_block:
        cursor_advance(cursor, to_block=last)
    return recorded


def _record(deployment, chain, event) -> int:
    try:
        with transaction.atomic():
            if isinstance(event, ProposalCreatedEvent):
                return _proposal_created(deployment, chain, event)
            if isinstance(event, VoteCastEvent):
                return _vote_cast(deployment, event)
            if isinstance(event, ProposalQueuedEvent):
                eta = datetime.fromtimestamp(event.eta_seconds, tz=UTC)
                return Proposal.objects.filter(deployment=deployment, proposal_id=str(event.proposal_id)).update(
                    state=ProposalState.QUEUED, eta=eta)
            if isinstance(event, ProposalExecutedEvent):
                return _proposal_executed(deployment, event)
            if isinstance(event, ProposalCanceledEvent):
                return Proposal.objects.filter(deployment=deployment, proposal_id=str(event.proposal_id)).update(
                    state=ProposalState.CANCELED)
            if isinstance(event, FeeSplitChangedEvent):
                return _fee_split_changed(deployment, event)
            if isinstance(event, EpochLengthChangedEvent | SharePolicyChangedEvent):
                return _governed_value_changed(deployment, chain, event)
    except IntegrityError:
        return 0  # another indexer recorded it first
    raise TypeError(f"unexpected event {event!r}")


def _proposal_created(deployment, chain, event: ProposalCreatedEvent) -> int:
    if Proposal.objects.filter(deployment=deployment, proposal_id=str(event.proposal_id)).exists():
        return 0
    call = change_from_calls(chain.parameters, event.targets, event.calldatas)
    proposal = Proposal.objects.create(
        deployment=deployment, proposal_id=str(event.proposal_id), proposer=event.proposer,
        description=event.description, targets=list(event.targets), values=[str(v) for v in event.values],
        calldatas=["0x" + c.hex() for c in event.calldatas],
        change_kind=call.kind if call else ChangeKind.OTHER, change=call.values if call else {},
        **(call.values if call and call.kind == FEE_SPLIT else {}),
        vote_start=event.vote_start, vote_end=event.vote_end, created_tx_hash=event.position.tx_hash,
        created_block=event.position.block_number)
    audit_record(actor=None, action=AuditAction.GOVERNANCE_PROPOSAL_RECORDED, target=proposal,
                 details={"proposal_id": proposal.proposal_id, "proposer": event.proposer,
                          "change": {"kind": call.kind, **call.values} if call else {"calls": len(event.targets)},
                          "tx_hash": event.position.tx_hash})
    return 1


def _vote_cast(deployment, event: VoteCastEvent) -> int:
    proposal = Proposal.objects.filter(deployment=deployment, proposal_id=str(event.proposal_id)).first()
    if proposal is None:
        logger.warning("vote %s on unknown proposal %s", event.position.key, event.proposal_id)
        return 0
    tx_hash, log_index = event.position.key
    if Vote.objects.filter(proposal=proposal, tx_hash=tx_hash, log_index=log_index).exists():
        return 0
    Vote.objects.create(proposal=proposal, voter=event.voter, support=SUPPORT_NAMES[event.support],
                        weight=event.weight, reason=event.reason, tx_hash=tx_hash, log_index=log_index,
                        block_number=event.position.block_number)
    return 1


def _proposal_executed(deployment, event: ProposalExecutedEvent) -> int:
    proposal = Proposal.objects.filter(deployment=deployment, proposal_id=str(event.proposal_id)).first()
    if proposal is None or proposal.executed_tx_hash:
        return 0
    proposal.state, proposal.executed_tx_hash = ProposalState.EXECUTED, event.position.tx_hash
    proposal.save(update_fields=["state", "executed_tx_hash", "updated_at"])
    # The registry's event comes earlier in the same transaction: link the change it recorded.
    ParameterChange.objects.filter(deployment=deployment, tx_hash=event.position.tx_hash,
                                   proposal__isnull=True).update(proposal=proposal)
    GovernedValue.objects.filter(deployment=deployment, tx_hash=event.position.tx_hash,
                                 proposal__isnull=True).update(proposal=proposal)
    return 1


def _fee_split_changed(deployment, event: FeeSplitChangedEvent) -> int:
    tx_hash, log_index = event.position.key
    if ParameterChange.objects.filter(deployment=deployment, tx_hash=tx_hash, log_index=log_index).exists():
        return 0
    split = event.split.as_dict()
    current = rewards_services.fee_policy_current()
    policy_version = None
    if (current.protocol_bps, current.owner_bps, current.contributors_bps) != (
            split["protocol_bps"], split["owner_bps"], split["contributors_bps"]):
        # The fallback (where a receipt-less fee's contributor part goes) is not on chain: it is kept.
        policy = rewards_services.fee_policy_set(actor=None, fallback=current.fallback, **split)
        policy_version = policy.version
    change = ParameterChange.objects.create(
        deployment=deployment, registry_version=event.version, **split,
        proposal=Proposal.objects.filter(deployment=deployment, executed_tx_hash=tx_hash).first(),
        fee_policy_version=policy_version, tx_hash=tx_hash, log_index=log_index,
        block_number=event.position.block_number)
    audit_record(actor=None, action=AuditAction.GOVERNANCE_FEE_SPLIT_APPLIED, target=change,
                 details={**split, "registry_version": event.version, "fee_policy_version": policy_version,
                          "previous_fee_policy_version": current.version, "tx_hash": tx_hash})
    return 1


def _governed_value_changed(deployment, chain, event: EpochLengthChangedEvent | SharePolicyChangedEvent) -> int:
    """An epoch length or share policy set by the timelock: a new `GovernedValue`, in force from now on
    (the readers take the latest), audited in the same transaction."""
    tx_hash, log_index = event.position.key
    if GovernedValue.objects.filter(deployment=deployment, tx_hash=tx_hash, log_index=log_index).exists():
        return 0
    if isinstance(event, EpochLengthChangedEvent):
        parameter, values = GovernedParameter.EPOCH_LENGTH, {"epoch_length_s": event.epoch_length_s}
    else:
        parameter = GovernedParameter.SHARE_POLICY
        values = {"attribution_fdr_bps": event.policy.fdr_bps, "attribution_top_groups": event.policy.top_groups}
    block = chain.parameters.client.w3.eth.get_block(event.position.block_number)
    value = GovernedValue.objects.create(
        deployment=deployment, parameter=parameter, registry_version=event.version, **values,
        proposal=Proposal.objects.filter(deployment=deployment, executed_tx_hash=tx_hash).first(),
        effective_at=datetime.fromtimestamp(block["timestamp"], tz=UTC), tx_hash=tx_hash, log_index=log_index,
        block_number=event.position.block_number)
    audit_record(actor=None, action=AuditAction.GOVERNANCE_PARAMETER_APPLIED, target=value,
                 details={"parameter": parameter, **values, "registry_version": event.version, "tx_hash": tx_hash})
    return 1


def _refresh_open_proposals(deployment, chain, block: int) -> None:
    """State and tallies of proposals not yet final, read from the governor (Succeeded and Defeated have
    no event: the state is the only way to see them)."""
    open_or_unread = Q(state_checked_block=0) | ~Q(state__in=FINAL_STATES)
    for proposal in Proposal.objects.filter(deployment=deployment).filter(open_or_unread):
        proposal_id = int(proposal.proposal_id)
        state = chain.governor.state(proposal_id)
        votes = chain.governor.proposal_votes(proposal_id)
        fields = {"state": state, "votes_for": votes["for"], "votes_against": votes["against"],
                  "votes_abstain": votes["abstain"], "state_checked_block": block}
        if state == ProposalState.QUEUED and proposal.eta is None:
            fields["eta"] = datetime.fromtimestamp(chain.governor.proposal_eta(proposal_id), tz=UTC)
        Proposal.objects.filter(pk=proposal.pk).update(**fields)
