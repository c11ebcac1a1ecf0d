"""On-chain governance of Lineage's parameters: a Django-free engine.

Four contracts (sources in ``contracts/src``, OpenZeppelin 5 underneath):

* ``OpenVotes`` (vOPEN): OPEN wrapped 1:1 (ERC20Wrapper + ERC20Votes + ERC20Permit); voting power is
  checkpointed per block and counts once delegated.
* ``LineageTimelock``: a TimelockController; the governor is its only proposer and canceller, anyone may
  execute a queued operation once its delay has passed, and the deployer's admin role is renounced.
* ``LineageGovernor``: Governor + Settings + CountingSimple + Votes + VotesQuorumFraction +
  TimelockControl.
* ``ProtocolParameters``: the registry the timelock owns (``rewards.chain.parameters``, re-exported here):
  the fee split, the epoch length and the attribution share policy, each within bounds fixed at
  deployment; it emits ``FeeSplitChanged``, ``EpochLengthChanged`` and ``SharePolicyChanged``.

A proposal is a list of calls (:class:`ProposalActions`); its id is ``hashProposal(targets, values,
calldatas, keccak256(description))``, computed here exactly as the governor computes it. Event readers
return :class:`~rewards.chain.contracts.LogPage`s over confirmed blocks, like the rewards contracts'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from .artifacts import GOVERNOR_CONTRACT, PARAMETERS_CONTRACT, TIMELOCK_CONTRACT, VOTES_CONTRACT
from .client import ChainClient, TxResult
from .contracts import LogPage, LogPosition, TokenContract, _BoundContract, _position
from .errors import ChainRevert
from .hashing import keccak256
from .parameters import (  # noqa: F401 - re-exported: the registry's names are governance's too
    BPS,
    EPOCH_LENGTH,
    FEE_SPLIT,
    SHARE_POLICY,
    EpochLengthChangedEvent,
    FeeSplit,
    FeeSplitChangedEvent,
    ParameterCall,
    ParametersContract,
    PlatformBounds,
    ProposalActions,
    RegistryEvent,
    SharePolicyChangedEvent,
    SharePolicyValues,
    change_from_calls,
    duration_words,
    fee_split_refusal,
    parameter_refusal,
    split_from_calls,
)
from .staking import format_open, stake_refusal

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
# IGovernor.ProposalState, in enum order.
PROPOSAL_STATES: tuple[str, ...] = ("pending", "active", "canceled", "defeated", "succeeded", "queued", "expired",
                                    "executed")
FINAL_STATES = frozenset({"canceled", "defeated", "expired", "executed"})
# GovernorCountingSimple's VoteType.
SUPPORT = {"against": 0, "for": 1, "abstain": 2}
SUPPORT_NAMES = {value: name for name, value in SUPPORT.items()}

DEFAULT_ADMIN_ROLE = b"\x00" * 32
PROPOSER_ROLE = keccak256(b"PROPOSER_ROLE")
EXECUTOR_ROLE = keccak256(b"EXECUTOR_ROLE")
CANCELLER_ROLE = keccak256(b"CANCELLER_ROLE")


@dataclass(frozen=True)
class GovernanceParameters:
    """Deployment parameters. The defaults are the development chain's: small, so a whole proposal runs
    in a test (about 15 blocks); production passes its own."""

    voting_delay_blocks: int = 1
    voting_period_blocks: int = 10
    proposal_threshold: int = 0
    """vOPEN base units of voting power needed to propose (0: any holder)."""
    quorum_percent: int = 4
    """Share of vOPEN's supply at the snapshot that must vote for or abstain."""
    timelock_delay_s: int = 1
    max_protocol_bps: int = 2_000
    max_owner_bps: int = 5_000
    min_contributors_bps: int = 4_000
    """Bounds of the fee split, fixed in the registry at deployment."""
    platform_bounds: PlatformBounds = field(default_factory=PlatformBounds)
    """Bounds of the epoch length and the attribution share policy, fixed in the registry at deployment."""


def _states_named(bitmap: bytes) -> str:
    """The ``expectedStates`` bitmap of ``GovernorUnexpectedProposalState`` as words ("succeeded or queued")."""
    bits = int.from_bytes(bytes(bitmap), "big")
    names = [name for index, name in enumerate(PROPOSAL_STATES) if bits >> index & 1]
    return " or ".join(names) or "another state"


def refusal_reason(revert: ChainRevert) -> str:
    """Why a governance, registry, staking or OPEN transaction was refused, in words: the one place the
    pages turn a decoded revert (:class:`~rewards.chain.errors.ChainRevert`) into a sentence."""
    worded = parameter_refusal(revert) or stake_refusal(revert)
    if worded:
        return worded
    args, name = revert.error_args, revert.error_name
    if name == "GovernorUnexpectedProposalState":
        return (f"The proposal is {PROPOSAL_STATES[args['current']]}; this step needs it "
                f"{_states_named(args['expectedStates'])}.")
    if name == "GovernorAlreadyCastVote":
        return f"{args['voter']} has already voted on this proposal."
    if name == "GovernorInsufficientProposerVotes":
        return (f"Proposing needs {format_open(args['threshold'], 'vOPEN')} of voting power; "
                f"{args['proposer']} has {format_open(args['votes'], 'vOPEN')}.")
    if name == "GovernorNonexistentProposal":
        return "There is no such proposal on chain."
    if name == "TimelockUnexpectedOperationState":
        return "The timelock's delay has not passed yet, or the operation was already executed."
    if name == "ERC20InsufficientBalance":
        return f"{args['sender']} holds {format_open(args['balance'])}; {format_open(args['needed'])} is needed."
    if name == "ERC20InsufficientAllowance":
        return f"The allowance is {format_open(args['allowance'])}; {format_open(args['needed'])} is needed."
    if name == "ERC20ExceededSafeSupply":
        return "That would exceed vOPEN's largest supply."
    arguments = ", ".join(f"{key}={value}" for key, value in args.items())
    return f"The chain refused it: {name}({arguments})."


# --- Events --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProposalCreatedEvent:
    proposal_id: int
    proposer: str
    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    vote_start: int
    vote_end: int
    description: str
    position: LogPosition


@dataclass(frozen=True)
class VoteCastEvent:
    voter: str
    proposal_id: int
    support: int
    weight: int
    reason: str
    position: LogPosition


@dataclass(frozen=True)
class ProposalQueuedEvent:
    proposal_id: int
    eta_seconds: int
    position: LogPosition


@dataclass(frozen=True)
class ProposalExecutedEvent:
    proposal_id: int
    position: LogPosition


@dataclass(frozen=True)
class ProposalCanceledEvent:
    proposal_id: int
    position: LogPosition


GovernorEvent = ProposalCreatedEvent | VoteCastEvent | ProposalQueuedEvent | ProposalExecutedEvent | ProposalCanceledEvent


# --- Contracts -----------------------------------------------------------------------------------------

class VotesContract(_BoundContract):
    """vOPEN: OPEN wrapped 1:1 into voting power."""

    artifact_name = VOTES_CONTRACT

    def underlying(self) -> str:
        return self._call("underlying")

    def balance_of(self, account: str) -> int:
        return self._call("balanceOf", Web3.to_checksum_address(account))

    def total_supply(self) -> int:
        return self._call("totalSupply")

    def votes_of(self, account: str) -> int:
        return self._call("getVotes", Web3.to_checksum_address(account))

    def delegates(self, account: str) -> str:
        return self._call("delegates", Web3.to_checksum_address(account))

    def wrap(self, token: TokenContract, amount: int, *, sender: LocalAccount | None = None) -> TxResult:
        """Approve ``amount`` OPEN to vOPEN and deposit it for the sender (two transactions)."""
        token.approve(self.address, amount, sender=sender)
        account = (sender or self.client.signer).address
        return self._transact("depositFor", account, amount, sender=sender)

    def unwrap(self, amount: int, *, to: str | None = None, sender: LocalAccount | None = None) -> TxResult:
        account = to or (sender or self.client.signer).address
        return self._transact("withdrawTo", Web3.to_checksum_address(account), amount, sender=sender)

    def delegate(self, delegatee: str, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("delegate", Web3.to_checksum_address(delegatee), sender=sender)


class TimelockContract(_BoundContract):
    artifact_name = TIMELOCK_CONTRACT

    def min_delay(self) -> int:
        return self._call("getMinDelay")

    def has_role(self, role: bytes, account: str) -> bool:
        return self._call("hasRole", role, Web3.to_checksum_address(account))

    def grant_role(self, role: bytes, account: str, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("grantRole", role, Web3.to_checksum_address(account), sender=sender)

    def renounce_role(self, role: bytes, account: str, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("renounceRole", role, Web3.to_checksum_address(account), sender=sender)


class GovernorContract(_BoundContract):
    artifact_name = GOVERNOR_CONTRACT

    # Reads
    def state(self, proposal_id: int) -> str:
        return PROPOSAL_STATES[self._call("state", proposal_id)]

    def proposal_votes(self, proposal_id: int) -> dict[str, int]:
        against, for_, abstain = self._call("proposalVotes", proposal_id)
        return {"for": for_, "against": against, "abstain": abstain}

    def proposal_snapshot(self, proposal_id: int) -> int:
        return self._call("proposalSnapshot", proposal_id)

    def proposal_deadline(self, proposal_id: int) -> int:
        return self._call("proposalDeadline", proposal_id)

    def proposal_eta(self, proposal_id: int) -> int:
        return self._call("proposalEta", proposal_id)

    def quorum(self, timepoint: int) -> int:
        return self._call("quorum", timepoint)

    def voting_delay(self) -> int:
        return self._call("votingDelay")

    def voting_period(self) -> int:
        return self._call("votingPeriod")

    def proposal_threshold(self) -> int:
        return self._call("proposalThreshold")

    def timelock(self) -> str:
        return self._call("timelock")

    def token(self) -> str:
        return self._call("token")

    def has_voted(self, proposal_id: int, account: str) -> bool:
        return self._call("hasVoted", proposal_id, Web3.to_checksum_address(account))

    def proposal_exists(self, proposal_id: int) -> bool:
        """Whether ``propose`` already created this id (a resend after a lost answer must not retry it)."""
        return self.proposal_snapshot(proposal_id) != 0

    def get_votes(self, account: str, timepoint: int) -> int:
        """Voting power of ``account`` at block ``timepoint`` (a proposal's snapshot)."""
        return self._call("getVotes", Web3.to_checksum_address(account), timepoint)

    def propose_calldata(self, actions: ProposalActions) -> str:
        return self.calldata("propose", list(actions.targets), list(actions.values), list(actions.calldatas),
                             actions.description)

    def vote_calldata(self, proposal_id: int, support: str, reason: str = "") -> str:
        if reason:
            return self.calldata("castVoteWithReason", proposal_id, SUPPORT[support], reason)
        return self.calldata("castVote", proposal_id, SUPPORT[support])

    # Writes
    def propose(self, actions: ProposalActions, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("propose", list(actions.targets), list(actions.values), list(actions.calldatas),
                              actions.description, sender=sender)

    def cast_vote(self, proposal_id: int, support: str, reason: str = "", *,
                  sender: LocalAccount | None = None) -> TxResult:
        if support not in SUPPORT:
            raise ValueError(f"support is one of {', '.join(SUPPORT)}")
        if reason:
            return self._transact("castVoteWithReason", proposal_id, SUPPORT[support], reason, sender=sender)
        return self._transact("castVote", proposal_id, SUPPORT[support], sender=sender)

    def queue(self, actions: ProposalActions, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("queue", list(actions.targets), list(actions.values), list(actions.calldatas),
                              actions.description_hash, sender=sender)

    def execute(self, actions: ProposalActions, *, sender: LocalAccount | None = None) -> TxResult:
        """Anyone may execute a queued proposal once the timelock's delay has passed; a call that reverts
        in the target surfaces as that target's :class:`~rewards.chain.errors.ChainRevert`."""
        return self._transact("execute", list(actions.targets), list(actions.values), list(actions.calldatas),
                              actions.description_hash, sender=sender)

    # Events
    def events(self, from_block: int, to_block: int | None = None) -> LogPage[GovernorEvent]:
        """Every proposal lifecycle event and vote in confirmed blocks, in chain order."""
        last = self.client.confirmed_block_number() if to_block is None else to_block
        if last < from_block:
            return LogPage([], from_block, last)
        found: list[tuple[tuple[int, int], Any]] = []
        for name, build in (("ProposalCreated", _proposal_created), ("VoteCast", _vote_cast),
                            ("VoteCastWithParams", _vote_cast), ("ProposalQueued", _proposal_queued),
                            ("ProposalExecuted", _proposal_executed), ("ProposalCanceled", _proposal_canceled)):
            logs, _ = self._logs(name, from_block, last)
            found += [((log["blockNumber"], log["logIndex"]), build(log)) for log in logs]
        return LogPage([event for _, event in sorted(found, key=lambda item: item[0])], from_block, last)


def _proposal_created(log: Any) -> ProposalCreatedEvent:
    args = log["args"]
    return ProposalCreatedEvent(args["proposalId"], args["proposer"],
                                tuple(Web3.to_checksum_address(t) for t in args["targets"]), tuple(args["values"]),
                                tuple(bytes(c) for c in args["calldatas"]), args["voteStart"], args["voteEnd"],
                                args["description"], _position(log))


def _vote_cast(log: Any) -> VoteCastEvent:
    args = log["args"]
    return VoteCastEvent(args["voter"], args["proposalId"], args["support"], args["weight"], args["reason"],
                         _position(log))


def _proposal_queued(log: Any) -> ProposalQueuedEvent:
    return ProposalQueuedEvent(log["args"]["proposalId"], log["args"]["etaSeconds"], _position(log))


def _proposal_executed(log: Any) -> ProposalExecutedEvent:
    return ProposalExecutedEvent(log["args"]["proposalId"], _position(log))


def _proposal_canceled(log: Any) -> ProposalCanceledEvent:
    return ProposalCanceledEvent(log["args"]["proposalId"], _position(log))


# --- Deployment ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GovernanceDeployment:
    votes: VotesContract
    timelock: TimelockContract
    governor: GovernorContract
    parameters: ParametersContract
    deployed_at_block: int
    """First block to scan for events."""
    transactions: list[TxResult] = field(default_factory=list, compare=False)
    """Every transaction of the deployment (gas figures)."""


def deploy_governance(client: ChainClient, *, token_address: str, initial_split: FeeSplit,
                      parameters: GovernanceParameters | None = None,
                      sender: LocalAccount | None = None) -> GovernanceDeployment:
    """Deploy vOPEN over ``token_address``, the timelock, the governor and the parameter registry.

    Roles: the governor becomes the timelock's only proposer and canceller, anyone (``address(0)``) its
    executor, and the deployer renounces the admin role it held during set-up, so afterwards only a
    passed proposal can change the registry or the governor's own settings.
    """
    settings = parameters or GovernanceParameters()
    deployer = (sender or client.signer).address
    sent: list[TxResult] = []

    def deploy(name: str, *args: Any) -> str:
        result = client.deploy(name, *args, sender=sender)
        sent.append(result)
        return result.contract_address

    votes = VotesContract(client, deploy(VOTES_CONTRACT, Web3.to_checksum_address(token_address)))
    timelock = TimelockContract(client, deploy(TIMELOCK_CONTRACT, settings.timelock_delay_s, [], [ZERO_ADDRESS],
                                               deployer))
    governor = GovernorContract(client, deploy(GOVERNOR_CONTRACT, votes.address, timelock.address,
                                               settings.voting_delay_blocks, settings.voting_period_blocks,
                                               settings.proposal_threshold, settings.quorum_percent))
    registry = ParametersContract(client, deploy(
        PARAMETERS_CONTRACT, timelock.address, settings.max_protocol_bps, settings.max_owner_bps,
        settings.min_contributors_bps, initial_split.protocol_bps, initial_split.owner_bps,
        initial_split.contributors_bps, settings.platform_bounds.as_tuple()))
    sent.append(timelock.grant_role(PROPOSER_ROLE, governor.address, sender=sender))
    sent.append(timelock.grant_role(CANCELLER_ROLE, governor.address, sender=sender))
    sent.append(timelock.renounce_role(DEFAULT_ADMIN_ROLE, deployer, sender=sender))
    return GovernanceDeployment(votes, timelock, governor, registry, sent[0].block_number, sent)


def governance_contracts(client: ChainClient, *, votes: str, timelock: str, governor: str,
                         parameters: str, deployed_at_block: int = 0) -> GovernanceDeployment:
    """Handles on already deployed contracts (addresses recorded by the platform or configured)."""
    return GovernanceDeployment(VotesContract(client, votes), TimelockContract(client, timelock),
                                GovernorContract(client, governor), ParametersContract(client, parameters),
                                deployed_at_block)
