"""Contributor stakes on chain: a Django-free client of ``ContributorStakes`` (``contracts/src``).

A contributor locks OPEN per Datanet (``stake``); asking to unstake (``requestUnstake``) starts a cooldown
after which ``withdraw`` returns it. The platform's key (``SLASHER_ROLE``) may ``slash`` part of a stake
(at most ``maxSlashBps`` per slash, active part first) into the Datanet's reward pool, naming the evidence
by its hash, and ``releasePool`` pays a pool out. Datanets are named on chain by their database id.

Every contributor call carries a ``request_id`` and every slash its ``evidence_hash``; the contract takes
each id once (``RequestAlreadyUsed``), so a caller that lost an answer can resend and ask
:meth:`StakingContract.request_used` without ever staking or slashing twice. ``releasePool`` takes no id: a
caller that lost an answer adds up :meth:`StakingContract.pool_releases` (what the Datanet's pool has paid out
so far) instead, as ``rewards.services.slash_releases`` does.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound

from .artifacts import STAKING_CONTRACT
from .client import ChainClient, TxResult
from .contracts import LogPage, LogPosition, TokenContract, _BoundContract, _position
from .errors import ChainRevert
from .hashing import keccak256

SLASHER_ROLE = keccak256(b"SLASHER_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32


def new_request_id() -> bytes:
    """A fresh 32-byte id for one stake or unstake request."""
    return secrets.token_bytes(32)


def evidence_hash(evidence: dict[str, Any]) -> bytes:
    """keccak256 of the evidence's canonical JSON (sorted keys, no spaces): anyone holding the published
    evidence can recompute the hash the ``Slashed`` event names."""
    return keccak256(json.dumps(evidence, sort_keys=True, separators=(",", ":")).encode())


@dataclass(frozen=True)
class StakingParameters:
    """Deployment parameters; the defaults are the development chain's."""

    cooldown_s: int = 300
    """Seconds between asking to unstake and being able to withdraw (production: days)."""
    max_slash_bps: int = 5_000
    """Most of a stake one slash may take, in basis points of active + unstaking."""


@dataclass(frozen=True)
class StakePosition:
    active: int
    unstaking: int
    unlock_at: int
    """Unix time from which ``unstaking`` can be withdrawn (0 when nothing is unstaking)."""

    @property
    def total(self) -> int:
        return self.active + self.unstaking


@dataclass(frozen=True)
class StakeEvent:
    """One of ``Staked``, ``UnstakeRequested``, ``Withdrawn``, ``Slashed`` (``kind`` in snake case).
    ``amount`` is what moved (for a slash, ``from_active + from_unstaking``)."""

    kind: str
    account: str
    datanet_id: int
    amount: int
    position: LogPosition
    unlock_at: int = 0
    request_id: bytes = b""
    from_active: int = 0
    from_unstaking: int = 0


@dataclass(frozen=True)
class PoolRelease:
    """A ``PoolReleased`` event: ``amount`` of Datanet ``datanet_id``'s pool paid to ``to``."""

    datanet_id: int
    to: str
    amount: int
    position: LogPosition


_EVENT_KINDS = {"Staked": "staked", "UnstakeRequested": "unstake_requested", "Withdrawn": "withdrawn",
                "Slashed": "slashed"}


def _stake_event(name: str, log: Any) -> StakeEvent:
    args = log["args"]
    common = {"kind": _EVENT_KINDS[name], "account": args["account"], "datanet_id": args["datanetId"],
              "position": _position(log)}
    if name == "Staked":
        return StakeEvent(amount=args["amount"], request_id=bytes(args["requestId"]), **common)
    if name == "UnstakeRequested":
        return StakeEvent(amount=args["amount"], unlock_at=args["unlockAt"], request_id=bytes(args["requestId"]),
                          **common)
    if name == "Withdrawn":
        return StakeEvent(amount=args["amount"], **common)
    return StakeEvent(amount=args["fromActive"] + args["fromUnstaking"], from_active=args["fromActive"],
                      from_unstaking=args["fromUnstaking"], request_id=bytes(args["evidenceHash"]), **common)


class StakingContract(_BoundContract):
    artifact_name = STAKING_CONTRACT

    # Reads
    def stake_of(self, account: str, datanet_id: int, *, block: int | str = "latest") -> StakePosition:
        active, unstaking, unlock_at = self.contract.functions.stakeOf(
            Web3.to_checksum_address(account), datanet_id).call(block_identifier=block)
        return StakePosition(active, unstaking, unlock_at)

    def reward_pool(self, datanet_id: int) -> int:
        return self._call("rewardPool", datanet_id)

    def request_used(self, request_id: bytes) -> bool:
        return self._call("requestUsed", request_id)

    def cooldown_s(self) -> int:
        return self._call("cooldownSeconds")

    def max_slash_bps(self) -> int:
        return self._call("maxSlashBps")

    def token_address(self) -> str:
        return self._call("token")

    def totals(self) -> dict[str, int]:
        return {"active": self._call("totalActive"), "unstaking": self._call("totalUnstaking"),
                "pools": self._call("totalPools")}

    def transaction_pending(self, tx_hash: str) -> bool:
        """Whether a transaction sent earlier (one whose confirmation timed out) still waits in the node's pool:
        known to the node and not mined. A release takes no id, so its sender waits for it rather than resend."""
        try:
            self.client.w3.eth.get_transaction_receipt(tx_hash)
            return False
        except TransactionNotFound:
            pass
        try:
            self.client.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    def has_role(self, role: bytes, account: str) -> bool:
        return self._call("hasRole", role, Web3.to_checksum_address(account))

    # Writes (contributor)
    def stake(self, token: TokenContract, datanet_id: int, amount: int, request_id: bytes, *,
              sender: LocalAccount | None = None) -> TxResult:
        """Approve (when the allowance is short) and stake ``amount`` OPEN on ``datanet_id``."""
        account = (sender or self.client.signer).address
        if token.allowance(account, self.address) < amount:
            token.approve(self.address, amount, sender=sender)
        return self._transact("stake", datanet_id, amount, request_id, sender=sender)

    def request_unstake(self, datanet_id: int, amount: int, request_id: bytes, *,
                        sender: LocalAccount | None = None) -> TxResult:
        return self._transact("requestUnstake", datanet_id, amount, request_id, sender=sender)

    def withdraw(self, datanet_id: int, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("withdraw", datanet_id, sender=sender)

    # Writes (platform)
    def slash(self, account: str, datanet_id: int, amount: int, evidence: bytes, *,
              sender: LocalAccount | None = None) -> TxResult:
        return self._transact("slash", Web3.to_checksum_address(account), datanet_id, amount, evidence,
                              sender=sender)

    def release_pool(self, datanet_id: int, to: str, amount: int, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("releasePool", datanet_id, Web3.to_checksum_address(to), amount, sender=sender)

    def grant_role(self, role: bytes, account: str, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("grantRole", role, Web3.to_checksum_address(account), sender=sender)

    # Events
    def pool_releases(self, from_block: int, to_block: int | str | None = None, *,
                      datanet_id: int | None = None) -> LogPage[PoolRelease]:
        """Every ``PoolReleased`` (of one Datanet when ``datanet_id`` is given) in chain order. ``to_block``:
        None reads confirmed blocks (for indexers and reconciliation); ``"latest"`` reads up to the head, for a
        sender asking whether its own release already landed."""
        last = self.client.block_number() if to_block == "latest" else to_block
        filters = {"datanetId": datanet_id} if datanet_id is not None else None
        logs, last = self._logs("PoolReleased", from_block, last, filters)
        return LogPage([PoolRelease(log["args"]["datanetId"], log["args"]["to"], log["args"]["amount"], _position(log))
                        for log in logs], from_block, last)

    def events(self, from_block: int, to_block: int | None = None) -> LogPage[StakeEvent]:
        """Every stake movement in confirmed blocks, in chain order."""
        last = self.client.confirmed_block_number() if to_block is None else to_block
        if last < from_block:
            return LogPage([], from_block, last)
        found: list[tuple[tuple[int, int], StakeEvent]] = []
        for name in _EVENT_KINDS:
            logs, _ = self._logs(name, from_block, last)
            found += [((log["blockNumber"], log["logIndex"]), _stake_event(name, log)) for log in logs]
        return LogPage([event for _, event in sorted(found, key=lambda item: item[0])], from_block, last)


def format_open(amount: int, unit: str = "OPEN") -> str:
    """Base units as exact OPEN ("1.5 OPEN") for refusal reasons (the engine does not import Django's
    ``rewards.amounts``)."""
    whole, fraction = divmod(int(amount), 10**18)
    return f"{whole:,}" + (f".{fraction:018d}".rstrip("0") if fraction else "") + f" {unit}"


def stake_refusal(revert: ChainRevert) -> str | None:
    """The staking contract's reason for a refusal, in words; None when ``revert`` is another error."""
    args = revert.error_args
    name = revert.error_name
    if name == "ZeroAmount":
        return "The amount must be more than zero."
    if name == "RequestAlreadyUsed":
        return "This request was already carried out on chain."
    if name == "StakeTooSmall":
        return (f"You have {format_open(args['active'])} staked on this Datanet and asked to unstake "
                f"{format_open(args['requested'])}.")
    if name == "NothingUnstaking":
        return "Nothing is waiting to be withdrawn on this Datanet: ask to unstake first."
    if name == "CooldownNotOver":
        wait = max(0, args["unlockAt"] - args["nowSeconds"])
        return f"The cooldown is not over: the stake can be withdrawn in {wait:,} s (at unix time {args['unlockAt']})."
    if name == "SlashTooLarge":
        return (f"A slash of {format_open(args['amount'])} is above the most one slash may take "
                f"({format_open(args['maxAmount'])}).")
    if name == "PoolTooSmall":
        return f"The Datanet's pool holds {format_open(args['available'])}; {format_open(args['requested'])} was asked."
    if name == "AccessControlUnauthorizedAccount":
        return f"{args['account']} is not allowed to do this (it lacks the platform's role)."
    return None


@dataclass(frozen=True)
class StakingDeployment:
    staking: StakingContract
    deployed_at_block: int
    transactions: list[TxResult] = field(default_factory=list, compare=False)


def deploy_staking(client: ChainClient, *, token_address: str, admin: str, slasher: str | None = None,
                   parameters: StakingParameters | None = None,
                   sender: LocalAccount | None = None) -> StakingDeployment:
    """Deploy ``ContributorStakes`` over OPEN. ``admin`` grants and revokes roles (the governance timelock,
    so only a passed proposal changes who may slash); ``slasher`` is the platform's key (default: the
    deploying account)."""
    settings = parameters or StakingParameters()
    slasher = slasher or (sender or client.signer).address
    result = client.deploy(STAKING_CONTRACT, Web3.to_checksum_address(token_address),
                           Web3.to_checksum_address(admin), Web3.to_checksum_address(slasher),
                           settings.cooldown_s, settings.max_slash_bps, sender=sender)
    return StakingDeployment(StakingContract(client, result.contract_address), result.block_number, [result])
