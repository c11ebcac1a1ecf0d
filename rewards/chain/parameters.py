"""The platform's on-chain parameter registry (``ProtocolParameters``, owned by the governance timelock) and
the proposals that change it: a Django-free engine module (``rewards.chain.governance`` re-exports it).

The registry governs three things, each with bounds fixed at deployment:

* the **fee split** (protocol / model owner / contributors, bps adding up to 10,000): ``setFeeSplit``,
  ``FeeSplitChanged``; refused with ``FeeSplitNotWhole`` / ``FeeShareOutOfRange``;
* the **epoch length** (seconds between earnings epoch closes): ``setEpochLength``, ``EpochLengthChanged``;
* the **attribution share policy** (the false-discovery rate in bps, 1,000 = 0.1, and the most credit groups
  paid per answer): ``setSharePolicy``, ``SharePolicyChanged``.

The last two start unset (0: the platform's settings apply) and a value outside its bounds is refused with
``ParameterOutOfRange(parameter, value, min, max)``. Every change is one call on the registry, proposed through
the governor as a :class:`ProposalActions` and executed by the timelock; ``*_proposal`` builds it and
``decode_call`` / :func:`change_from_calls` read it back from a proposal's calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_abi import abi as eth_abi
from eth_account.signers.local import LocalAccount
from web3 import Web3

from .artifacts import PARAMETERS_CONTRACT
from .client import TxResult
from .contracts import LogPage, LogPosition, _BoundContract, _position
from .errors import ChainRevert
from .hashing import keccak256

BPS = 10_000
# What a registry call changes (the `kind` of a decoded call and of a change event).
FEE_SPLIT, EPOCH_LENGTH, SHARE_POLICY = "fee_split", "epoch_length", "share_policy"


@dataclass(frozen=True)
class FeeSplit:
    """The fee split in basis points (protocol treasury / model owner / data contributors)."""

    protocol_bps: int
    owner_bps: int
    contributors_bps: int

    def as_dict(self) -> dict[str, int]:
        return {"protocol_bps": self.protocol_bps, "owner_bps": self.owner_bps,
                "contributors_bps": self.contributors_bps}


@dataclass(frozen=True)
class SharePolicyValues:
    """The governed part of attribution's share policy: the false-discovery rate in bps (1,000 = 0.1) and the
    most credit groups paid per answer."""

    fdr_bps: int
    top_groups: int

    @property
    def fdr(self) -> float:
        return self.fdr_bps / BPS

    def as_dict(self) -> dict[str, Any]:
        return {"fdr_bps": self.fdr_bps, "fdr": str(Decimal(self.fdr_bps) / BPS), "top_groups": self.top_groups}


@dataclass(frozen=True)
class PlatformBounds:
    """Bounds of the epoch length and the share policy, immutable in the registry once deployed."""

    min_epoch_length_s: int = 3_600
    max_epoch_length_s: int = 30 * 86_400
    min_attribution_fdr_bps: int = 100
    max_attribution_fdr_bps: int = 2_000
    min_attribution_top_groups: int = 10
    max_attribution_top_groups: int = 200

    def as_tuple(self) -> tuple[int, ...]:
        """The constructor's ``PlatformBounds`` struct, in field order."""
        return (self.min_epoch_length_s, self.max_epoch_length_s, self.min_attribution_fdr_bps,
                self.max_attribution_fdr_bps, self.min_attribution_top_groups, self.max_attribution_top_groups)


@dataclass(frozen=True)
class ProposalActions:
    """What a proposal does (the calls the timelock will make) and its description."""

    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    description: str

    @property
    def description_hash(self) -> bytes:
        return keccak256(self.description.encode())

    @property
    def proposal_id(self) -> int:
        """``Governor.hashProposal``: the id the governor gives this proposal."""
        encoded = eth_abi.encode(["address[]", "uint256[]", "bytes[]", "bytes32"],
                                 [list(self.targets), list(self.values), list(self.calldatas),
                                  self.description_hash])
        return int.from_bytes(keccak256(encoded), "big")


@dataclass(frozen=True)
class ParameterCall:
    """One registry call decoded from a proposal: its kind and the values it sets."""

    kind: str
    values: dict[str, Any]


# --- Refusals in words -----------------------------------------------------------------------------------

def duration_words(seconds: int) -> str:
    """Seconds as people say them: "7 days", "36 hours", "90 minutes", "45 s"."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count:,} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:,} s"


def _fdr_words(bps: int) -> str:
    return f"{Decimal(bps) / BPS:f}".rstrip("0").rstrip(".") if bps % BPS else str(bps // BPS)


def fee_split_refusal(revert: ChainRevert) -> str | None:
    """The registry's reason for refusing a split, in words; None when ``revert`` is another error."""
    args = revert.error_args
    if revert.error_name == "FeeSplitNotWhole":
        return f"The shares add up to {args['total']:,} bps; they must add up to {args['required']:,}."
    if revert.error_name == "FeeShareOutOfRange":
        share = bytes(args["share"]).rstrip(b"\0").decode()
        return (f"The {share} share is {args['value']:,} bps; the registry allows "
                f"{args['min']:,} to {args['max']:,}.")
    return None


def parameter_refusal(revert: ChainRevert) -> str | None:
    """The registry's reason for refusing an epoch length or a share policy, in words; None when ``revert``
    is another error."""
    if revert.error_name != "ParameterOutOfRange":
        return fee_split_refusal(revert)
    args = revert.error_args
    name = bytes(args["parameter"]).rstrip(b"\0").decode()
    value, low, high = args["value"], args["min"], args["max"]
    if name == "epoch length":
        return (f"The epoch length is {duration_words(value)}; the registry allows {duration_words(low)} to "
                f"{duration_words(high)}.")
    if name == "attribution fdr":
        return (f"The false-discovery rate is {_fdr_words(value)}; the registry allows {_fdr_words(low)} to "
                f"{_fdr_words(high)}.")
    if name == "attribution top groups":
        return f"The most credit groups paid per answer is {value:,}; the registry allows {low:,} to {high:,}."
    return f"The {name} is {value:,}; the registry allows {low:,} to {high:,}."


# --- Events ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeeSplitChangedEvent:
    version: int
    split: FeeSplit
    position: LogPosition


@dataclass(frozen=True)
class EpochLengthChangedEvent:
    version: int
    epoch_length_s: int
    position: LogPosition


@dataclass(frozen=True)
class SharePolicyChangedEvent:
    version: int
    policy: SharePolicyValues
    position: LogPosition


RegistryEvent = FeeSplitChangedEvent | EpochLengthChangedEvent | SharePolicyChangedEvent


# --- The contract ----------------------------------------------------------------------------------------

class ParametersContract(_BoundContract):
    """The parameter registry (owned by the timelock)."""

    artifact_name = PARAMETERS_CONTRACT

    def fee_split(self) -> FeeSplit:
        return FeeSplit(*self._call("feeSplit"))

    def fee_split_version(self) -> int:
        return self._call("feeSplitVersion")

    def epoch_length_s(self) -> int:
        """Seconds between epoch closes; 0 while no proposal has set it."""
        return self._call("epochLengthSeconds")

    def share_policy(self) -> SharePolicyValues | None:
        """The governed share policy; None while no proposal has set it."""
        fdr_bps, top_groups = self._call("attributionFdrBps"), self._call("attributionTopGroups")
        return SharePolicyValues(fdr_bps, top_groups) if fdr_bps else None

    def owner(self) -> str:
        return self._call("owner")

    def bounds(self) -> dict[str, int]:
        return {"max_protocol_bps": self._call("maxProtocolBps"), "max_owner_bps": self._call("maxOwnerBps"),
                "min_contributors_bps": self._call("minContributorsBps")}

    def platform_bounds(self) -> PlatformBounds:
        return PlatformBounds(*(self._call(name) for name in (
            "minEpochLengthSeconds", "maxEpochLengthSeconds", "minAttributionFdrBps", "maxAttributionFdrBps",
            "minAttributionTopGroups", "maxAttributionTopGroups")))

    # Checks: raise the registry's own ChainRevert when it would refuse, return None when it would accept.
    def check_fee_split(self, split: FeeSplit) -> None:
        """``FeeSplitNotWhole`` / ``FeeShareOutOfRange`` when the registry would refuse ``split``."""
        self._call("checkFeeSplit", split.protocol_bps, split.owner_bps, split.contributors_bps)

    def check_epoch_length(self, seconds: int) -> None:
        self._call("checkEpochLength", seconds)

    def check_share_policy(self, policy: SharePolicyValues) -> None:
        self._call("checkSharePolicy", policy.fdr_bps, policy.top_groups)

    def check(self, kind: str, value) -> None:
        """The check of one kind of change (``FEE_SPLIT``: a FeeSplit, ``EPOCH_LENGTH``: seconds,
        ``SHARE_POLICY``: a SharePolicyValues)."""
        {FEE_SPLIT: self.check_fee_split, EPOCH_LENGTH: self.check_epoch_length,
         SHARE_POLICY: self.check_share_policy}[kind](value)

    # Writes (only the owner, the timelock: anyone else gets ``OwnableUnauthorizedAccount``)
    def set_fee_split(self, split: FeeSplit, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("setFeeSplit", split.protocol_bps, split.owner_bps, split.contributors_bps,
                              sender=sender)

    def set_epoch_length(self, seconds: int, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("setEpochLength", seconds, sender=sender)

    def set_share_policy(self, policy: SharePolicyValues, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("setSharePolicy", policy.fdr_bps, policy.top_groups, sender=sender)

    # Proposals: one call on this registry
    def _calldata(self, function_name: str, *args: Any) -> bytes:
        return bytes.fromhex(self.calldata(function_name, *args)[2:])

    def set_fee_split_calldata(self, split: FeeSplit) -> bytes:
        return self._calldata("setFeeSplit", split.protocol_bps, split.owner_bps, split.contributors_bps)

    def _proposal(self, calldata: bytes, description: str) -> ProposalActions:
        return ProposalActions((self.address,), (0,), (calldata,), description)

    def fee_split_proposal(self, split: FeeSplit, description: str) -> ProposalActions:
        """The proposal that sets ``split`` (not checked here: see :meth:`check_fee_split`)."""
        return self._proposal(self.set_fee_split_calldata(split), description)

    def epoch_length_proposal(self, seconds: int, description: str) -> ProposalActions:
        """The proposal that sets the epoch length (not checked here: see :meth:`check_epoch_length`)."""
        return self._proposal(self._calldata("setEpochLength", seconds), description)

    def share_policy_proposal(self, policy: SharePolicyValues, description: str) -> ProposalActions:
        """The proposal that sets the share policy (not checked here: see :meth:`check_share_policy`)."""
        return self._proposal(self._calldata("setSharePolicy", policy.fdr_bps, policy.top_groups), description)

    def proposal(self, kind: str, value, description: str) -> ProposalActions:
        return {FEE_SPLIT: self.fee_split_proposal, EPOCH_LENGTH: self.epoch_length_proposal,
                SHARE_POLICY: self.share_policy_proposal}[kind](value, description)

    def decode_call(self, target: str, calldata: bytes) -> ParameterCall | None:
        """What a proposal's call sets, or None when it is not a setter on this registry."""
        if Web3.to_checksum_address(target) != self.address:
            return None
        try:
            function, arguments = self.contract.decode_function_input(bytes(calldata))
        except ValueError:
            return None
        if function.fn_name == "setFeeSplit":
            return ParameterCall(FEE_SPLIT, FeeSplit(arguments["protocolBps"], arguments["ownerBps"],
                                                     arguments["contributorsBps"]).as_dict())
        if function.fn_name == "setEpochLength":
            return ParameterCall(EPOCH_LENGTH, {"epoch_length_s": arguments["lengthSeconds"]})
        if function.fn_name == "setSharePolicy":
            return ParameterCall(SHARE_POLICY, SharePolicyValues(arguments["fdrBps"], arguments["topGroups"]).as_dict())
        return None

    def decode_fee_split_call(self, target: str, calldata: bytes) -> FeeSplit | None:
        """The split a proposal's call sets, or None when the call is not ``setFeeSplit`` on this registry."""
        call = self.decode_call(target, calldata)
        return FeeSplit(**call.values) if call is not None and call.kind == FEE_SPLIT else None

    # Events
    def fee_split_changed_events(self, from_block: int, to_block: int | None = None) -> LogPage[FeeSplitChangedEvent]:
        logs, last = self._logs("FeeSplitChanged", from_block, to_block)
        events = [FeeSplitChangedEvent(log["args"]["version"],
                                       FeeSplit(log["args"]["protocolBps"], log["args"]["ownerBps"],
                                                log["args"]["contributorsBps"]), _position(log)) for log in logs]
        return LogPage(events, from_block, last)

    def events(self, from_block: int, to_block: int | None = None) -> LogPage[RegistryEvent]:
        """Every change of the registry (fee split, epoch length, share policy) in confirmed blocks, in chain
        order."""
        last = self.client.confirmed_block_number() if to_block is None else to_block
        found: list[Any] = list(self.fee_split_changed_events(from_block, last).events)
        logs, _ = self._logs("EpochLengthChanged", from_block, last)
        found += [EpochLengthChangedEvent(log["args"]["version"], log["args"]["epochLengthSeconds"], _position(log))
                  for log in logs]
        logs, _ = self._logs("SharePolicyChanged", from_block, last)
        found += [SharePolicyChangedEvent(log["args"]["version"],
                                          SharePolicyValues(log["args"]["attributionFdrBps"],
                                                            log["args"]["attributionTopGroups"]), _position(log))
                  for log in logs]
        found.sort(key=lambda event: (event.position.block_number, event.position.log_index))
        return LogPage(found, from_block, last)


def change_from_calls(parameters: ParametersContract, targets: Sequence[str],
                      calldatas: Sequence[bytes]) -> ParameterCall | None:
    """What a proposal changes when its only call is a setter on ``parameters``; None otherwise."""
    if len(targets) != 1 or len(calldatas) != 1:
        return None
    return parameters.decode_call(targets[0], calldatas[0])


def split_from_calls(parameters: ParametersContract, targets: Sequence[str],
                     calldatas: Sequence[bytes]) -> FeeSplit | None:
    """The fee split a proposal sets when its only call is ``setFeeSplit`` on ``parameters``."""
    call = change_from_calls(parameters, targets, calldatas)
    return FeeSplit(**call.values) if call is not None and call.kind == FEE_SPLIT else None
