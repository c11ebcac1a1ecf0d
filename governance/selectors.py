"""Reads for governance pages: proposals, votes and stakes as mirrored by the indexers (never a chain call
in a request, except `wallet_overview`, which says so)."""

from datetime import UTC, datetime

from django.shortcuts import get_object_or_404

from rewards.amounts import format_open

from .models import (
    DatanetStakeRequirement,
    GovernanceCursor,
    ParameterChange,
    Proposal,
    ProposalState,
    SlashState,
    StakeEvent,
    StakeEventKind,
    StakeSlash,
    WalletAction,
)


def _vopen(amount) -> str:
    return f"{format_open(amount)} vOPEN"


def _votes(proposal: Proposal) -> dict:
    return {"for": _vopen(proposal.votes_for), "against": _vopen(proposal.votes_against),
            "abstain": _vopen(proposal.votes_abstain)}


def proposals_list(*, limit: int = 100) -> list[dict]:
    return [{"proposal": p, "votes": _votes(p), "change": p.fee_split}
            for p in Proposal.objects.select_related("deployment")[:limit]]


def proposal_detail(*, pk: int) -> dict:
    proposal = get_object_or_404(Proposal.objects.select_related("deployment"), pk=pk)
    return {"proposal": proposal, "votes": _votes(proposal), "change": proposal.fee_split,
            "calls": list(zip(proposal.targets, proposal.values, proposal.calldatas, strict=False)),
            "ballots": [{"voter": v.voter, "support": v.support, "weight": _vopen(v.weight), "reason": v.reason,
                         "tx_hash": v.tx_hash} for v in proposal.votes.all()],
            "applied": list(ParameterChange.objects.filter(proposal=proposal))}


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
    from rewards.models import Wallet

    return list(Wallet.objects.filter(user=user).values_list("address", flat=True))


def user_by_address(address: str):
    from rewards.models import Wallet

    wallet = Wallet.objects.filter(address__iexact=address).select_related("user").first()
    return wallet.user if wallet else None


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


def _when(unix: int):
    return datetime.fromtimestamp(unix, tz=UTC) if unix else None


def stakes_for(*, user) -> dict:
    """The contributor's page: each stake with its Datanet, and every slash with its evidence rows."""
    from datanets.models import Datanet

    positions = stake_positions(addresses=addresses_of(user=user))
    names = {d.pk: d for d in Datanet.objects.filter(pk__in={datanet for _, datanet in positions})}
    stakes = [{"address": address, "datanet": names.get(datanet), "datanet_id": datanet,
               "active": p["active"], "unstaking": p["unstaking"], "unlock_at": _when(p["unlock_at"])}
              for (address, datanet), p in sorted(positions.items(), key=lambda item: item[0][1])]
    slashes = list(StakeSlash.objects.filter(user=user).select_related("datanet"))
    return {"stakes": stakes, "slashes": slashes, "wallet": wallet_address_for(user=user),
            "actions": [a for a in wallet_actions_for(user=user) if a.kind in ("stake", "unstake", "withdraw")]}


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
