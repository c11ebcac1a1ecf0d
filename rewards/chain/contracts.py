"""Typed handles on the OPEN token and the cumulative Merkle distributor, plus their event readers.

Event readers return :class:`LogPage`s: the events of a block range that already has the policy's
confirmations, and the range actually scanned, so an indexer can store ``to_block + 1`` as its next
cursor. Every event carries ``(tx_hash, log_index)``, the key under which the Django side records it
exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from eth_account.signers.local import LocalAccount
from web3 import Web3

from .artifacts import DISTRIBUTOR_CONTRACT, TOKEN_CONTRACT
from .client import ChainClient, TxResult
from .merkle import CumulativeRewardsTree

EventT = TypeVar("EventT")


@dataclass(frozen=True)
class LogPage(Generic[EventT]):
    """Events found in ``[from_block, to_block]``; ``to_block < from_block`` means nothing was
    confirmed yet and the cursor must not move."""

    events: list[EventT]
    from_block: int
    to_block: int


@dataclass(frozen=True)
class LogPosition:
    block_number: int
    tx_hash: str
    log_index: int

    @property
    def key(self) -> tuple[str, int]:
        """Unique identity of the log: store it to process each event exactly once."""
        return (self.tx_hash, self.log_index)


@dataclass(frozen=True)
class ClaimedEvent:
    account: str
    amount: int
    cumulative: int
    position: LogPosition


@dataclass(frozen=True)
class RootUpdatedEvent:
    epoch: int
    root: bytes
    total_cumulative: int
    tree_hash: bytes
    position: LogPosition


@dataclass(frozen=True)
class TokenDeposit:
    """An ERC-20 transfer of OPEN into a platform deposit address."""

    sender: str
    recipient: str
    amount: int
    position: LogPosition


@dataclass(frozen=True)
class ClaimRequest:
    """One entry of a relayed ``claimMany`` batch."""

    account: str
    cumulative_amount: int
    proof: list[bytes]

    @classmethod
    def from_tree(cls, tree: CumulativeRewardsTree, account: str) -> ClaimRequest:
        return cls(Web3.to_checksum_address(account), tree.amount_of(account), tree.proof(account))


class _BoundContract:
    artifact_name: str

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.contract = client.contract(self.artifact_name, self.address)

    def _call(self, function_name: str, *args: Any) -> Any:
        return self.client.call(self.contract, function_name, *args)

    def calldata(self, function_name: str, *args: Any) -> str:
        """``0x``-hex call data of ``function_name(*args)``: what a wallet signs to send it itself."""
        return self.contract.encode_abi(function_name, args=list(args))

    def _transact(self, function_name: str, *args: Any, sender: LocalAccount | None) -> TxResult:
        return self.client.transact(self.contract, function_name, *args, sender=sender)

    def _logs(self, event_name: str, from_block: int, to_block: int | None,
              argument_filters: dict[str, Any] | None = None) -> tuple[list[Any], int]:
        last = self.client.confirmed_block_number() if to_block is None else to_block
        if last < from_block:
            return [], last
        logs = self.contract.events[event_name]().get_logs(
            from_block=from_block, to_block=last, argument_filters=argument_filters)
        return sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"])), last


def _position(log: Any) -> LogPosition:
    return LogPosition(log["blockNumber"], "0x" + bytes(log["transactionHash"]).hex(), log["logIndex"])


class TokenContract(_BoundContract):
    """The OPEN ERC-20."""

    artifact_name = TOKEN_CONTRACT

    def balance_of(self, account: str) -> int:
        return self._call("balanceOf", Web3.to_checksum_address(account))

    def total_supply(self) -> int:
        return self._call("totalSupply")

    def transfer(self, to: str, amount: int, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("transfer", Web3.to_checksum_address(to), amount, sender=sender)

    def approve(self, spender: str, amount: int, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("approve", Web3.to_checksum_address(spender), amount, sender=sender)

    def allowance(self, owner: str, spender: str) -> int:
        return self._call("allowance", Web3.to_checksum_address(owner), Web3.to_checksum_address(spender))

    def deposits_to(self, deposit_address: str, from_block: int, to_block: int | None = None) -> LogPage[TokenDeposit]:
        """Transfers into ``deposit_address`` in confirmed blocks from ``from_block`` on."""
        recipient = Web3.to_checksum_address(deposit_address)
        logs, last = self._logs("Transfer", from_block, to_block, {"to": recipient})
        deposits = [TokenDeposit(log["args"]["from"], log["args"]["to"], log["args"]["value"], _position(log))
                    for log in logs]
        return LogPage(deposits, from_block, last)


class DistributorContract(_BoundContract):
    """The CumulativeMerkleDistributor."""

    artifact_name = DISTRIBUTOR_CONTRACT

    # Reads
    def claimed(self, account: str) -> int:
        return self._call("claimed", Web3.to_checksum_address(account))

    def merkle_root(self) -> bytes:
        return bytes(self._call("merkleRoot"))

    def epoch(self) -> int:
        return self._call("epoch")

    def total_claimed(self) -> int:
        return self._call("totalClaimed")

    def token_address(self) -> str:
        return self._call("token")

    def owner(self) -> str:
        return self._call("owner")

    def pending_owner(self) -> str:
        return self._call("pendingOwner")

    def root_updater(self) -> str:
        return self._call("rootUpdater")

    def paused(self) -> bool:
        return self._call("paused")

    # Writes
    def set_merkle_root(self, root: bytes, epoch: int, total_cumulative: int, tree_hash: bytes, *,
                        sender: LocalAccount | None = None) -> TxResult:
        return self._transact("setMerkleRoot", root, epoch, total_cumulative, tree_hash, sender=sender)

    def publish_tree(self, tree: CumulativeRewardsTree, epoch: int, *, sender: LocalAccount | None = None) -> TxResult:
        """Publish ``tree`` as ``epoch``: its root, its total (for the solvency check) and its dump hash."""
        return self.set_merkle_root(tree.root, epoch, tree.total_cumulative, tree.dump_hash(), sender=sender)

    def claim(self, account: str, cumulative_amount: int, proof: Sequence[bytes], *,
              sender: LocalAccount | None = None) -> TxResult:
        return self._transact("claim", Web3.to_checksum_address(account), cumulative_amount, list(proof),
                              sender=sender)

    def claim_many(self, claims: Sequence[ClaimRequest], *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("claimMany", [Web3.to_checksum_address(c.account) for c in claims],
                              [c.cumulative_amount for c in claims], [list(c.proof) for c in claims],
                              sender=sender)

    def pause(self, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("pause", sender=sender)

    def unpause(self, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("unpause", sender=sender)

    def set_root_updater(self, updater: str, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("setRootUpdater", Web3.to_checksum_address(updater), sender=sender)

    def transfer_ownership(self, new_owner: str, *, sender: LocalAccount | None = None) -> TxResult:
        """Step one of two: the new owner becomes pending until it calls :meth:`accept_ownership`."""
        return self._transact("transferOwnership", Web3.to_checksum_address(new_owner), sender=sender)

    def accept_ownership(self, *, sender: LocalAccount | None = None) -> TxResult:
        return self._transact("acceptOwnership", sender=sender)

    # Events
    def claimed_events(self, from_block: int, to_block: int | None = None) -> LogPage[ClaimedEvent]:
        logs, last = self._logs("Claimed", from_block, to_block)
        events = [ClaimedEvent(log["args"]["account"], log["args"]["amount"], log["args"]["cumulative"],
                               _position(log)) for log in logs]
        return LogPage(events, from_block, last)

    def root_updated_events(self, from_block: int, to_block: int | None = None) -> LogPage[RootUpdatedEvent]:
        logs, last = self._logs("RootUpdated", from_block, to_block)
        events = [RootUpdatedEvent(log["args"]["epoch"], bytes(log["args"]["root"]),
                                   log["args"]["totalCumulative"], bytes(log["args"]["treeHash"]), _position(log))
                  for log in logs]
        return LogPage(events, from_block, last)


@dataclass(frozen=True)
class RewardsDeployment:
    token: TokenContract
    distributor: DistributorContract
    deployed_at_block: int
    """First block to scan for events."""


def deploy_rewards(client: ChainClient, *, supply: int, treasury: str | None = None, owner: str | None = None,
                   root_updater: str | None = None, sender: LocalAccount | None = None) -> RewardsDeployment:
    """Deploy the OPEN token (whole supply to ``treasury``) and a distributor paying it.

    Addresses default to the deploying account; in production the owner should be a multisig and the
    root updater the platform's hot key.
    """
    deployer = (sender or client.signer).address
    token = client.deploy(TOKEN_CONTRACT, treasury or deployer, supply, sender=sender)
    distributor = client.deploy(DISTRIBUTOR_CONTRACT, token.contract_address, owner or deployer,
                                root_updater or deployer, sender=sender)
    return RewardsDeployment(TokenContract(client, token.contract_address),
                             DistributorContract(client, distributor.contract_address), token.block_number)
