"""Transaction machinery: one client for the in-process chain and for any JSON-RPC node.

Why the care around sending: reward payouts move money, so a transaction must never execute twice
and never silently vanish. The client therefore

* hands out nonces from a local per-sender tracker (no read-modify race with our own unmined
  transactions) and re-reads the node's nonce whenever a send is rejected;
* estimates gas and sets ``gas`` explicitly with a margin (a claim's cost can move between estimate
  and inclusion; on py-evm an explicit ``gas`` also halves the latency);
* signs ONCE and, on a transport failure, resends the very same signed bytes: same nonce, same hash,
  so a send whose response was lost cannot execute a second time;
* waits for the receipt and a configurable number of confirmations, and turns every revert (at
  estimation or on chain) into :class:`~rewards.chain.errors.ChainRevert`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import abi as eth_abi
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils.abi import collapse_if_tuple
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound

from .artifacts import load_artifact
from .errors import ChainRevert, ChainSendError, RevertDecoder, TransactionTimeout

# Failures after which the node may or may not have received the transaction.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, requests.exceptions.RequestException)
_REVERT_ERRORS = (TransactionFailed, ContractLogicError)


@dataclass(frozen=True)
class TransactionPolicy:
    """How transactions are sent and confirmed; the Django side builds one from settings."""

    gas_margin: float = 1.25
    """Multiplier on the gas estimate."""
    confirmations: int = 1
    """Blocks that must contain or follow a transaction (or a log) before it counts; 1 = mined."""
    receipt_timeout_s: float = 120.0
    poll_interval_s: float = 0.5
    send_attempts: int = 3
    """Tries to hand one signed transaction to the node when the transport fails."""
    retry_backoff_s: float = 0.5
    """First pause between tries; doubles each time."""
    max_priority_fee_wei: int | None = None
    """Tip per gas; None asks the node (``eth_maxPriorityFeePerGas``)."""

    def __post_init__(self) -> None:
        if self.confirmations < 1 or self.send_attempts < 1 or self.gas_margin < 1:
            raise ValueError("confirmations and send_attempts must be >= 1 and gas_margin >= 1")


@dataclass(frozen=True)
class TxResult:
    """A mined, confirmed, successful transaction."""

    tx_hash: str
    sender: str
    nonce: int
    block_number: int
    gas_used: int
    contract_address: str | None = None


class NonceTracker:
    """Next nonce per sender, kept locally so back-to-back sends do not reuse one.

    Asking the node for every send would race with our own pending transactions; the tracker reads the
    node once per sender and counts up. :meth:`forget` makes the next :meth:`reserve` re-read it (after
    a rejected send, or after the chain was reverted to a snapshot).
    """

    def __init__(self, fetch_pending_nonce: Callable[[str], int]) -> None:
        self._fetch = fetch_pending_nonce
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, sender: str) -> int:
        with self._lock:
            nonce = self._next[sender] if sender in self._next else self._fetch(sender)
            self._next[sender] = nonce + 1
            return nonce

    def forget(self, sender: str | None = None) -> None:
        with self._lock:
            if sender is None:
                self._next.clear()
            else:
                self._next.pop(sender, None)


class InProcessChain:
    """A py-evm chain inside this process (eth-tester's default Prague fork) with ten funded accounts.

    Used by tests, benchmarks and local development; production passes an RPC URL instead.
    """

    def __init__(self) -> None:
        self.backend = PyEVMBackend()
        self.tester = EthereumTester(self.backend)
        self.accounts: list[LocalAccount] = [Account.from_key(key.to_bytes()) for key in self.backend.account_keys]

    def snapshot(self) -> int:
        return self.tester.take_snapshot()

    def revert(self, snapshot_id: int) -> None:
        self.tester.revert_to_snapshot(snapshot_id)

    def mine_blocks(self, count: int = 1) -> None:
        self.tester.mine_blocks(count)


class ChainClient:
    """Sends and reads transactions for one chain; ``signer`` is the default sender.

    Build it with :meth:`in_process` or :meth:`from_rpc`, or pass any ``Web3`` (a custom provider).
    Every sending method takes ``sender=`` to sign with another key (owner, root updater, relayer).
    """

    def __init__(self, w3: Web3, signer: LocalAccount, *, policy: TransactionPolicy | None = None,
                 local_chain: InProcessChain | None = None) -> None:
        self.w3 = w3
        self.signer = signer
        self.policy = policy or TransactionPolicy()
        self.local_chain = local_chain
        self.revert_decoder = RevertDecoder.for_rewards_contracts()
        self.nonces = NonceTracker(lambda sender: self.w3.eth.get_transaction_count(sender, "pending"))
        self._chain_id: int | None = None

    @classmethod
    def in_process(cls, chain: InProcessChain | None = None, *, policy: TransactionPolicy | None = None,
                   signer: LocalAccount | None = None) -> ChainClient:
        """Client on a fresh (or the given) in-process chain, signing with its first funded account."""
        chain = chain or InProcessChain()
        return cls(Web3(EthereumTesterProvider(chain.tester)), signer or chain.accounts[0],
                   policy=policy, local_chain=chain)

    @classmethod
    def from_rpc(cls, rpc_url: str, private_key: str | bytes, *, policy: TransactionPolicy | None = None,
                 request_timeout_s: float = 30.0) -> ChainClient:
        """Client on a JSON-RPC node; the key comes from the caller (Django settings / environment)."""
        w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout_s}))
        return cls(w3, Account.from_key(private_key), policy=policy)

    # Chain state -------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.signer.address

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def block_number(self) -> int:
        return self.w3.eth.block_number

    def confirmed_block_number(self, confirmations: int | None = None) -> int:
        """Newest block with ``confirmations`` blocks on top of it counted inclusively (1 = head)."""
        return self.block_number() - (confirmations or self.policy.confirmations) + 1

    def snapshot(self) -> int:
        """Snapshot the in-process chain (about 10 ms): tests revert to it instead of redeploying."""
        return self._require_local_chain().snapshot()

    def revert_to_snapshot(self, snapshot_id: int) -> None:
        """Revert the in-process chain; forgets cached nonces, which the revert made stale."""
        self._require_local_chain().revert(snapshot_id)
        self.nonces.forget()

    # Contracts ---------------------------------------------------------------------------------------

    def contract(self, artifact_name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(artifact_name).abi)

    def call(self, contract: Contract, function_name: str, *args: Any) -> Any:
        """Read-only call; a revert raises :class:`ChainRevert`."""
        try:
            return contract.functions[function_name](*args).call()
        except _REVERT_ERRORS as error:
            raise self.revert_decoder.from_exception(error) from error

    def transact(self, contract: Contract, function_name: str, *args: Any,
                 sender: LocalAccount | None = None) -> TxResult:
        """Send ``function_name(*args)`` to ``contract`` and wait until it is confirmed."""
        data = contract.encode_abi(function_name, args=list(args))
        return self.send({"to": contract.address, "data": data}, sender=sender)

    def deploy(self, artifact_name: str, *constructor_args: Any, sender: LocalAccount | None = None) -> TxResult:
        """Deploy a compiled contract from ``rewards/chain/artifacts``; ``contract_address`` is set."""
        artifact = load_artifact(artifact_name)
        constructor = next((e for e in artifact.abi if e["type"] == "constructor"), {"inputs": []})
        # A struct argument is a tuple of its fields' types ("(uint256,uint256)"), passed as a Python tuple.
        encoded_args = eth_abi.encode([collapse_if_tuple(param) for param in constructor["inputs"]],
                                      list(constructor_args))
        return self.send({"data": artifact.bytecode + encoded_args.hex()}, sender=sender)

    # Sending ----------------------------------------------------------------------------------------

    def send(self, fields: dict[str, Any], *, sender: LocalAccount | None = None) -> TxResult:
        """Sign and send a transaction (``to``/``data``/``value``), then wait for its confirmation.

        Raises :class:`ChainRevert` when it reverts (at estimation, before any nonce is used, or on
        chain), :class:`ChainSendError` when the node will not take it, :class:`TransactionTimeout`
        when it is not confirmed in time. Transport errors before signing (reading fees, estimating)
        propagate unchanged: nothing was sent, so the caller can simply try again.
        """
        account = sender or self.signer
        transaction = {"value": 0, **fields, "from": account.address, "chainId": self.chain_id, **self._fees()}
        if "gas" not in transaction:
            transaction["gas"] = self._estimate_gas(transaction)
        transaction["nonce"] = self.nonces.reserve(account.address)
        signed = account.sign_transaction(transaction)
        tx_hash = "0x" + bytes(signed.hash).hex()
        try:
            self._broadcast(bytes(signed.raw_transaction), tx_hash)
        except ChainSendError:
            # The nonce may be taken by someone else or be too high: re-read it next time.
            self.nonces.forget(account.address)
            raise
        receipt = self._wait_for_confirmation(tx_hash)
        if receipt["status"] != 1:
            raise self._explain_failure(transaction, receipt, tx_hash)
        return TxResult(tx_hash=tx_hash, sender=account.address, nonce=transaction["nonce"],
                        block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                        contract_address=receipt.get("contractAddress"))

    def _fees(self) -> dict[str, int]:
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:  # pre-London chain
            return {"gasPrice": self.w3.eth.gas_price}
        tip = self.policy.max_priority_fee_wei
        tip = self.w3.eth.max_priority_fee if tip is None else tip
        # Twice the base fee survives six consecutive full blocks of base-fee growth.
        return {"maxFeePerGas": 2 * base_fee + tip, "maxPriorityFeePerGas": tip}

    def _estimate_gas(self, transaction: dict[str, Any]) -> int:
        request = {key: transaction[key] for key in ("from", "to", "data", "value") if key in transaction}
        try:
            estimate = self.w3.eth.estimate_gas(request)
        except _REVERT_ERRORS as error:
            raise self.revert_decoder.from_exception(error) from error
        return math.ceil(estimate * self.policy.gas_margin)

    def _broadcast(self, raw_transaction: bytes, tx_hash: str) -> None:
        """Hand the signed bytes to the node, resending the same bytes when the transport fails."""
        last_error: BaseException | None = None
        for attempt in range(self.policy.send_attempts):
            if attempt:
                time.sleep(self.policy.retry_backoff_s * 2 ** (attempt - 1))
            try:
                self.w3.eth.send_raw_transaction(raw_transaction)
                return
            except TRANSIENT_ERRORS as error:
                last_error = error
                # The node may have taken it before the response was lost.
                if self._is_known(tx_hash):
                    return
            except Exception as error:
                # A resend of a transaction the node already has is rejected ("already known",
                # "nonce too low"): that is success, not failure.
                if self._is_known(tx_hash):
                    return
                raise ChainSendError(f"node rejected {tx_hash}: {error}") from error
        raise ChainSendError(f"could not send {tx_hash} after {self.policy.send_attempts} tries") from last_error

    def _is_known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
        except (TransactionNotFound, *TRANSIENT_ERRORS):
            return False
        return True

    def _wait_for_confirmation(self, tx_hash: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.policy.receipt_timeout_s
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.policy.receipt_timeout_s, poll_latency=self.policy.poll_interval_s)
        except TimeExhausted as error:
            raise TransactionTimeout(f"{tx_hash} not mined in {self.policy.receipt_timeout_s} s", tx_hash) from error
        if self.policy.confirmations == 1:
            return receipt
        while self.block_number() < receipt["blockNumber"] + self.policy.confirmations - 1:
            if time.monotonic() > deadline:
                raise TransactionTimeout(f"{tx_hash} not confirmed {self.policy.confirmations} times", tx_hash)
            time.sleep(self.policy.poll_interval_s)
        # Re-read: a reorg while waiting may have moved (or dropped) the transaction.
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return self._wait_for_confirmation(tx_hash)

    def _explain_failure(self, transaction: dict[str, Any], receipt: dict[str, Any], tx_hash: str) -> ChainRevert:
        """Replay a transaction that failed on chain against the state before its block to get the error."""
        if receipt["gasUsed"] >= transaction["gas"]:
            return ChainRevert("OutOfGas", {"gas": transaction["gas"]}, tx_hash=tx_hash)
        replay = {key: transaction[key] for key in ("from", "to", "data", "value", "gas") if key in transaction}
        try:
            self.w3.eth.call(replay, block_identifier=receipt["blockNumber"] - 1)
        except _REVERT_ERRORS as error:
            return self.revert_decoder.from_exception(error, tx_hash=tx_hash)
        # The state the transaction met differed from the replayed one (earlier transactions in its block).
        return ChainRevert("Revert", {"reason": "reverted on chain; replay did not reproduce it"}, tx_hash=tx_hash)

    def _require_local_chain(self) -> InProcessChain:
        if self.local_chain is None:
            raise RuntimeError("snapshots exist only on the in-process chain")
        return self.local_chain
