"""Reads for governance pages: proposals, votes and stakes as mirrored by the indexers (never a chain call
in a request, except `wallet_overview`, which says so)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.shortcuts import get_object_or_404

from .conf import setting
from .models import (
    DatanetStakeRequirement,
    GovernanceCursor,
    GovernanceDeployment,
    GovernedParameter,
    GovernedValue,
    ParameterChange,
    Proposal,
    ProposalState,
    SlashState,
    StakeEvent,
    StakeEventKind,
    StakeSlash,
    WalletAction,
)


def _votes(proposal: Proposal) -> dict:
    # Base units of vOPEN; the pages show them with `|open_rounded:"vOPEN"`.
    return {"for": int(proposal.votes_for), "against": int(proposal.votes_against),
            "abstain": int(proposal.votes_abstain)}


def proposals_list(*, limit: int = 100) -> list[dict]:
    return [{"proposal": p, "votes": _votes(p), "change": p.fee_split, "change_words": p.change_words}
            for p in Proposal.objects.select_related("deployment")[:limit]]


def proposal_detail(*, pk: int) -> dict:
    proposal = get_object_or_404(Proposal.objects.select_related("deployment"), pk=pk)
    return {"proposal": proposal, "votes": _votes(proposal), "change": proposal.fee_split,
            "change_words": proposal.change_words,
            "calls": list(zip(proposal.targets, proposal.values, proposal.calldatas, strict=False)),
            "ballots": [{"voter": v.voter, "support": v.support, "weight": int(v.weight), "reason": v.reason,
                         "tx_hash": v.tx_hash} for v in proposal.votes.all()],
            "applied": list(ParameterChange.objects.filter(proposal=proposal)),
            "governed": list(GovernedValue.objects.filter(proposal=proposal))}


# --- Governed platform parameters: the value in force, else the setting ------------------------------------

def governed_value(*, parameter: str) -> GovernedValue | None:
    """The value in force of a governed parameter: the latest one the registry of the latest governance
    deployment set (a restarted development chain starts from the settings again); None: not governed."""
    latest = GovernanceDeployment.objects.order_by("-created_at", "-pk").values("pk")[:1]
    return (GovernedValue.objects.filter(deployment__in=latest, parameter=parameter)
            .select_related("proposal").order_by("-block_number", "-log_index").first())


def epoch_length_in_force() -> dict:
    """Seconds between earnings epoch closes: {"seconds", "governed" (the GovernedValue, or None when the
    setting REWARDS_EPOCH_LENGTH_S applies)}."""
    governed = governed_value(parameter=GovernedParameter.EPOCH_LENGTH)
    seconds = governed.epoch_length_s if governed else settings.REWARDS_EPOCH_LENGTH_S
    return {"seconds": int(seconds), "governed": governed}


def share_policy_in_force() -> dict:
    """Attribution's governed share-policy values: {"fdr", "top_groups", "governed" (the GovernedValue, or
    None when the settings ATTRIBUTION_FDR and ATTRIBUTION_TOP_GROUPS apply)}."""
    governed = governed_value(parameter=GovernedParameter.SHARE_POLICY)
    if governed is None:
        return {"fdr": float(settings.ATTRIBUTION_FDR), "top_groups": int(settings.ATTRIBUTION_TOP_GROUPS),
                "governed": None}
    return {"fdr": governed.attribution_fdr_bps / 10_000, "top_groups": int(governed.attribution_top_groups),
            "governed": governed}


def parameters_in_force() -> dict:
    """What the propose page shows next to its form: each governed parameter's value now and where it comes
    from (a proposal, or the platform's setting)."""
    from rewards.chain.parameters import duration_words
    from rewards.selectors import fee_policy_public

    epoch = epoch_length_in_force()
    return {"fee_split": fee_policy_public(), "epoch_length": {**epoch, "words": duration_words(epoch["seconds"])},
            "share_policy": share_policy_in_force()}


def indexed_up_to() -> int | None:
    """Last block the indexer has read (None before its first run)."""
    cursor = GovernanceCursor.objects.filter(name="governance").order_by("-pk").first()
    return cursor.next_block - 1 if cursor else None


# --- Wallets, actions and stakes ---------------------------------------------------------------------------

def wallet_address_for(*, user) -> str | None:
    """The wallet a user acts from: their payout wallet in effect, else the one waiting to take effect."""
    from rewards.selectors import wallet_state

    state = wallet_state(user=user)
    wallet = state["current"] or state["pending"]
    return wallet.address if wallet else None


def addresses_of(*, user) -> list[str]:
    from rewards.selectors import wallet_addresses_of

    return wallet_addresses_of(user=user)


def user_by_address(address: str):
    from rewards.selectors import wallet_owner

    return wallet_owner(address=address)


def wallet_actions_for(*, user, limit: int = 20) -> list[WalletAction]:
    return list(WalletAction.objects.filter(user=user).select_related("proposal")[:limit])


def wallet_action_get(*, pk: int, user) -> WalletAction:
    """A user's own action (staff see every action)."""
    queryset = WalletAction.objects.select_related("proposal", "user")
    if not getattr(user, "is_staff", False):
        queryset = queryset.filter(user=user)
    return get_object_or_404(queryset, pk=pk)


def proposals_awaiting() -> dict:
    """The admin's queue: succeeded proposals waiting to be queued, queued ones waiting to be executed."""
    base = Proposal.objects.select_related("deployment").order_by("created_block")
    return {"to_queue": list(base.filter(state=ProposalState.SUCCEEDED)),
            "to_execute": list(base.filter(state=ProposalState.QUEUED))}


def stake_positions(*, addresses=None, datanet_id: int | None = None) -> dict[tuple[str, int], dict]:
    """Stakes as the indexed events add up: {(address, datanet_id): {active, unstaking, unlock_at, user_id}}.
    This is the database's side of reconciliation (`services.governance_reconcile` compares it with the chain)."""
    events = StakeEvent.objects.order_by("block_number", "log_index")
    if addresses is not None:
        events = events.filter(address__in=list(addresses))
    if datanet_id is not None:
        events = events.filter(datanet_id=datanet_id)
    positions: dict[tuple[str, int], dict] = {}
    for kind, address, datanet, amount, from_active, from_unstaking, unlock_at, user_id in events.values_list(
            "kind", "address", "datanet_id", "amount", "from_active", "from_unstaking", "unlock_at", "user_id"):
        position = positions.setdefault((address, datanet), {"active": 0, "unstaking": 0, "unlock_at": 0,
                                                             "user_id": user_id})
        amount, from_active, from_unstaking = int(amount), int(from_active), int(from_unstaking)
        if kind == StakeEventKind.STAKED:
            position["active"] += amount
        elif kind == StakeEventKind.UNSTAKE_REQUESTED:
            position["active"] -= amount
            position["unstaking"] += amount
            position["unlock_at"] = unlock_at
        elif kind == StakeEventKind.WITHDRAWN:
            position["unstaking"] -= amount
            position["unlock_at"] = 0
        elif kind == StakeEventKind.SLASHED:
            position["active"] -= from_active
            position["unstaking"] -= from_unstaking
        position["user_id"] = position["user_id"] or user_id
    return positions


def active_stake(*, user, datanet_id: int) -> int:
    """OPEN a user's linked wallets have actively staked on a Datanet (unstaking does not count)."""
    addresses = addresses_of(user=user)
    if not addresses:
        return 0
    return sum(p["active"] for p in stake_positions(addresses=addresses, datanet_id=datanet_id).values())


@dataclass(frozen=True)
class StakeRowQuota:
    """Rows a contributor may add to a staked Datanet's review queue per rolling 24 hours, and why that many."""

    rows_per_day: int
    stake: int
    """OPEN (base units) their linked wallets have actively staked on the Datanet."""
    required: int
    """The Datanet's required stake (base units)."""
    rows_per_required_stake: int
    most: int
    """The cap, whatever the stake."""


def stake_row_quota(*, user, datanet) -> StakeRowQuota | None:
    """The upload quota that scales with stake (docs/governance.md): `GOVERNANCE_STAKE_ROWS_PER_DAY` rows per
    required stake's worth of active stake, rounded down, at most `GOVERNANCE_STAKE_ROWS_MAX_MULTIPLE` times
    that. None: no quota (the Datanet requires no stake, the user curates it, or the setting is 0)."""
    from datanets.selectors import datanet_permissions  # datanets calls governance: imported when used

    per_required = setting("GOVERNANCE_STAKE_ROWS_PER_DAY")
    requirement = DatanetStakeRequirement.objects.filter(datanet=datanet).first()
    if per_required <= 0 or requirement is None or datanet_permissions(datanet=datanet, user=user).can_curate:
        return None
    required, stake = int(requirement.minimum), active_stake(user=user, datanet_id=datanet.pk)
    most = per_required * max(1, setting("GOVERNANCE_STAKE_ROWS_MAX_MULTIPLE"))
    return StakeRowQuota(rows_per_day=min(most, per_required * stake // required), stake=stake, required=required,
                         rows_per_required_stake=per_required, most=most)


def _when(unix: int):
    return datetime.fromtimestamp(unix, tz=UTC) if unix else None


def stakes_for(*, user) -> dict:
    """The contributor's page: each stake with its Datanet, and every slash with its evidence rows."""
    from datanets.selectors import datanets_by_id

    positions = stake_positions(addresses=addresses_of(user=user))
    names = datanets_by_id(ids={datanet for _, datanet in positions})
    stakes = [{"address": address, "datanet": names.get(datanet), "datanet_id": datanet,
               "active": p["active"], "unstaking": p["unstaking"], "unlock_at": _when(p["unlock_at"])}
              for (address, datanet), p in sorted(positions.items(), key=lambda item: item[0][1])]
    slashes = list(StakeSlash.objects.filter(user=user).select_related("datanet"))
    _link_evidence(slashes)
    return {"stakes": stakes, "slashes": slashes, "wallet": wallet_address_for(user=user),
            "actions": [a for a in wallet_actions_for(user=user) if a.kind in ("stake", "unstake", "withdraw")]}


def _link_evidence(slashes: list[StakeSlash]) -> None:
    """Give each slash `evidence_rows`: its evidence rows, each with the address of the contribution page that
    shows the row, its status and the curator's reason (None for a row no longer stored)."""
    from django.urls import reverse

    from datanets.selectors import records_by_uid

    records = records_by_uid(uids=[f"r{row['id']}" for slash in slashes for row in slash.rows])
    for slash in slashes:
        slash.evidence_rows = []
        for row in slash.rows:
            record = records.get(f"r{row['id']}")
            url = (reverse("datanets:contribution", args=[record.datanet.slug, record.contribution_id])
                   if record is not None else None)
            slash.evidence_rows.append({**row, "url": url})


def datanet_stake_overview(*, datanet) -> dict:
    """A Datanet's stake requirement, who has staked on it, and the slashes made on it."""
    requirement = DatanetStakeRequirement.objects.filter(datanet=datanet).first()
    positions = stake_positions(datanet_id=datanet.pk)
    stakers = [{"address": address, "active": p["active"], "unstaking": p["unstaking"]}
               for (address, _), p in sorted(positions.items()) if p["active"] or p["unstaking"]]
    pool = sum(int(s.amount) for s in StakeSlash.objects.filter(datanet=datanet, state=SlashState.DONE))
    return {"requirement": requirement, "stakers": stakers, "pool": pool,
            "slashes": list(StakeSlash.objects.filter(datanet=datanet).select_related("user"))}


def wallet_overview(*, user, client=None) -> dict:
    """Voting power of the user's wallet, READ FROM THE CHAIN (a few view calls): OPEN and vOPEN held,
    delegate and votes. The only selector that asks the chain; on any fault the figures are None."""
    from rewards.chain import TokenContract
    from rewards.chainio import get_chain_client

    from .chainio import contracts, deployment_recorded

    address = wallet_address_for(user=user)
    overview = {"address": address, "open": None, "vopen": None, "delegate": None, "votes": None}
    if not address:
        return overview
    try:
        client = client or get_chain_client()
        deployment = deployment_recorded(client=client)
        if deployment is None:
            return overview
        chain = contracts(deployment, client)
        overview.update(open=TokenContract(client, deployment.token_address).balance_of(address),
                        vopen=chain.votes.balance_of(address), delegate=chain.votes.delegates(address),
                        votes=chain.votes.votes_of(address))
    except Exception:  # noqa: BLE001 - the page still renders without the chain
        pass
    return overview
