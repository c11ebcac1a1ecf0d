"""Reconciliation of governance with the chain, run by `manage.py chain_reconcile` next to rewards' own:
votes (each proposal's indexed ballots against the governor's tallies), stakes (each position the indexed
events add up to against `stakeOf`, and the contract's totals), slashes (each recorded slash against its
`Slashed` event and every `Slashed` event against a recorded decision), the release of booked slashes from
their Datanet's pool (booked, recorded as released and released on chain, `rewards.services.slash_releases`),
the fee split (the registry
against the rewards fee policy in force) and the governed epoch length and share policy (the registry
against the `GovernedValue` in force). Each difference is an open `ReconciliationIssue`; nothing is
patched. Only what is recorded for this chain is checked: reconciling never deploys anything.
"""

from rewards import services as rewards_services
from rewards.amounts import format_open
from rewards.chainio import get_chain_client, report_issue

from ..chainio import contracts, deployment_recorded, staking_contract
from ..models import (
    GovernedParameter,
    GovernedValue,
    Proposal,
    SlashState,
    StakeEvent,
    StakeEventKind,
    StakeSlash,
    VoteSupport,
)
from ..selectors import stake_positions
from .indexer import governance_index
from .slash_rewards import bookings_on
from .staking import stakes_index


def governance_reconcile(*, client=None) -> list:
    client = client or get_chain_client()
    deployment = deployment_recorded(client=client)
    if deployment is None:
        return []
    governance_index(client=client)
    issues = _votes(deployment, client) + _fee_split(deployment, client) + _platform_parameters(deployment, client)
    if deployment.staking_address:
        stakes_index(client=client)
        issues += _stakes(deployment, client) + _slashes(deployment, client) + rewards_services.slash_releases_reconcile(
            staking=staking_contract(deployment, client), bookings=bookings_on(deployment=deployment),
            from_block=deployment.staking_deployed_at_block)
    return [issue for issue in issues if issue is not None]


def _votes(deployment, client) -> list:
    governor = contracts(deployment, client).governor
    issues = []
    for proposal in Proposal.objects.filter(deployment=deployment).prefetch_related("votes"):
        booked = {support: 0 for support in VoteSupport.values}
        for vote in proposal.votes.all():
            booked[vote.support] += int(vote.weight)
        on_chain = governor.proposal_votes(int(proposal.proposal_id))
        if booked != on_chain:
            issues.append(report_issue(
                kind="governance_votes_mismatch",
                fingerprint=f"gov_votes:{deployment.pk}:{proposal.proposal_id[:40]}:{sorted(on_chain.items())}",
                detail=f"Proposal {proposal.proposal_id[:12]}…: the governor counts {_tally(on_chain)}; the indexed "
                       f"votes add up to {_tally(booked)}.",
                data={"proposal_id": proposal.proposal_id}))
    return issues


def _tally(votes: dict) -> str:
    return ", ".join(f"{format_open(votes[s])} {s}" for s in ("for", "against", "abstain"))


def _fee_split(deployment, client) -> list:
    split = contracts(deployment, client).parameters.fee_split()
    policy = rewards_services.fee_policy_current()
    if (policy.protocol_bps, policy.owner_bps, policy.contributors_bps) == (
            split.protocol_bps, split.owner_bps, split.contributors_bps):
        return []
    return [report_issue(
        kind="governance_fee_split_mismatch",
        fingerprint=f"gov_split:{deployment.pk}:{split.protocol_bps}:{split.owner_bps}:{policy.version}",
        detail=f"The registry's fee split is {split.protocol_bps}/{split.owner_bps}/{split.contributors_bps} bps; "
               f"the fee policy in force (version {policy.version}) is "
               f"{policy.protocol_bps}/{policy.owner_bps}/{policy.contributors_bps} bps.")]


def _platform_parameters(deployment, client) -> list:
    """The registry's epoch length and share policy (0: never set) against the latest mirrored value."""
    registry = contracts(deployment, client).parameters
    policy = registry.share_policy()
    on_chain = {GovernedParameter.EPOCH_LENGTH: (registry.epoch_length_s(),),
                GovernedParameter.SHARE_POLICY: (policy.fdr_bps, policy.top_groups) if policy else (0, 0)}
    issues = []
    for parameter, chain_value in on_chain.items():
        latest = (GovernedValue.objects.filter(deployment=deployment, parameter=parameter)
                  .order_by("-block_number", "-log_index").first())
        if parameter == GovernedParameter.EPOCH_LENGTH:
            mirrored = (latest.epoch_length_s,) if latest else (0,)
        else:
            mirrored = (latest.attribution_fdr_bps, latest.attribution_top_groups) if latest else (0, 0)
        if mirrored != chain_value:
            issues.append(report_issue(
                kind="governance_parameter_mismatch",
                fingerprint=f"gov_param:{deployment.pk}:{parameter}:{chain_value}:{mirrored}",
                detail=f"The registry's {GovernedParameter(parameter).label} is {_values(parameter, chain_value)}; the "
                       f"value in force in the database is {_values(parameter, mirrored)}.",
                data={"parameter": parameter, "chain": list(chain_value), "database": list(mirrored)}))
    return issues


def _values(parameter: str, values: tuple) -> str:
    if not any(values):
        return "not set"
    if parameter == GovernedParameter.EPOCH_LENGTH:
        return f"{values[0]:,} s"
    return f"a false-discovery rate of {values[0]:,} bps and at most {values[1]:,} groups"


def _stakes(deployment, client) -> list:
    staking = staking_contract(deployment, client)
    block = client.confirmed_block_number()
    issues, totals = [], {"active": 0, "unstaking": 0}
    for (address, datanet_id), booked in stake_positions().items():
        totals["active"] += booked["active"]
        totals["unstaking"] += booked["unstaking"]
        chain = staking.stake_of(address, datanet_id, block=block)
        if (chain.active, chain.unstaking) != (booked["active"], booked["unstaking"]):
            issues.append(report_issue(
                kind="governance_stake_mismatch",
                fingerprint=f"gov_stake:{deployment.pk}:{address}:{datanet_id}:{chain.active}:{chain.unstaking}",
                detail=f"{address} on Datanet {datanet_id}: the chain holds {format_open(chain.active)} OPEN staked "
                       f"and {format_open(chain.unstaking)} unstaking; the indexed events add up to "
                       f"{format_open(booked['active'])} and {format_open(booked['unstaking'])}.",
                data={"address": address, "datanet_id": datanet_id}))
    on_chain = {name: staking.contract.functions[fn]().call(block_identifier=block)
                for name, fn in (("active", "totalActive"), ("unstaking", "totalUnstaking"))}
    if on_chain != totals:
        issues.append(report_issue(
            kind="governance_stake_mismatch",
            fingerprint=f"gov_stake_totals:{deployment.pk}:{on_chain['active']}:{on_chain['unstaking']}",
            detail=f"The stakes contract holds {format_open(on_chain['active'])} OPEN staked and "
                   f"{format_open(on_chain['unstaking'])} unstaking in all; the indexed positions add up to "
                   f"{format_open(totals['active'])} and {format_open(totals['unstaking'])}."))
    return issues


def _slashes(deployment, client) -> list:
    issues = []
    events = {e.request_id: e for e in StakeEvent.objects.filter(deployment=deployment, kind=StakeEventKind.SLASHED)}
    decided = {s.evidence_hash: s for s in StakeSlash.objects.filter(deployment=deployment)}
    for digest, event in events.items():
        slash = decided.get(digest)
        if slash is None:
            issues.append(report_issue(
                kind="governance_slash_unexplained", fingerprint=f"gov_slash_event:{deployment.pk}:{event.tx_hash}",
                detail=f"{event.address} was slashed {format_open(event.amount)} OPEN on Datanet {event.datanet_id} "
                       f"(tx {event.tx_hash}) with evidence {digest}, which the platform never decided.",
                data={"tx_hash": event.tx_hash, "evidence_hash": digest}))
        elif slash.state != SlashState.DONE or int(slash.amount) != int(event.amount) or slash.tx_hash != event.tx_hash:
            issues.append(report_issue(
                kind="governance_slash_mismatch", fingerprint=f"gov_slash:{deployment.pk}:{digest}:{slash.state}",
                detail=f"Slash {slash.pk} is recorded as {slash.state} ({format_open(slash.amount)} OPEN, tx "
                       f"{slash.tx_hash or '-'}); the chain slashed {format_open(event.amount)} OPEN in {event.tx_hash}.",
                data={"slash": slash.pk, "evidence_hash": digest}))
    for digest, slash in decided.items():
        if slash.state == SlashState.DONE and digest not in events:
            issues.append(report_issue(
                kind="governance_slash_mismatch", fingerprint=f"gov_slash_missing:{deployment.pk}:{digest}",
                detail=f"Slash {slash.pk} of {slash.address} is recorded as done but no Slashed event names its "
                       f"evidence {digest}.", data={"slash": slash.pk, "evidence_hash": digest}))
    return issues
