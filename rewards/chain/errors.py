"""Exceptions of the chain engine, and the one place where contract reverts are decoded.

A revert surfaces differently per backend: eth-tester raises ``TransactionFailed`` whose message
embeds the raw revert bytes; JSON-RPC nodes make web3 raise ``ContractCustomError`` /
``ContractLogicError`` / ``ContractPanicError`` with the hex data. Callers (Django views, Celery
tasks) must not care which backend ran, so every path funnels into :class:`ChainRevert` with the
custom error's name and named arguments decoded from the contract ABIs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

from eth_abi import abi as eth_abi
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractLogicError

from .artifacts import CONTRACT_NAMES, load_artifact
from .hashing import checksum_address, keccak256

# Solidity's built-in revert payloads, present in no ABI.
_BUILTIN_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]
ETH_TESTER_REVERT_PREFIX = "execution reverted: "


class ChainError(Exception):
    """Base class of every error the chain engine raises on purpose."""


class ChainRevert(ChainError):
    """A contract call or transaction reverted.

    ``error_name`` is the Solidity custom error (``"NothingToClaim"``), ``"Error"`` for
    ``require(..., "reason")``, ``"Panic"`` for assertion/arithmetic failures, ``"Revert"`` for a
    revert without data, or ``"Unknown"`` when the selector is in no known ABI (``data`` then holds
    the raw bytes). ``error_args`` maps the error's parameter names to decoded values.
    """

    def __init__(self, error_name: str, error_args: dict[str, Any] | None = None, *,
                 data: bytes = b"", tx_hash: str | None = None) -> None:
        self.error_name = error_name
        self.error_args = dict(error_args or {})
        self.data = data
        self.tx_hash = tx_hash
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.error_args.items())
        super().__init__(f"{error_name}({arguments})" + (f" in {tx_hash}" if tx_hash else ""))


class ChainSendError(ChainError):
    """A transaction could not be handed to the node (after retries); nothing was executed."""


class TransactionTimeout(ChainError):
    """A sent transaction was not mined (or not confirmed) in time. It may still be mined later:
    the nonce is kept, so a resend of the same signed bytes cannot execute twice."""

    def __init__(self, message: str, tx_hash: str) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class RevertDecoder:
    """Maps 4-byte error selectors to ABI error definitions and decodes revert data."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for entry in [item for abi in abis for item in abi] + _BUILTIN_ERRORS:
            if entry.get("type") != "error":
                continue
            types = [_canonical_type(param) for param in entry["inputs"]]
            selector = keccak256(f"{entry['name']}({','.join(types)})".encode())[:4]
            self._errors[selector] = (entry["name"], [p["name"] for p in entry["inputs"]], types)

    @classmethod
    def for_rewards_contracts(cls) -> RevertDecoder:
        """Decoder knowing every error of the token and distributor (OpenZeppelin's included)."""
        return cls(load_artifact(name).abi for name in CONTRACT_NAMES)

    def decode(self, data: bytes, *, tx_hash: str | None = None) -> ChainRevert:
        """Turn raw revert data into a :class:`ChainRevert`."""
        if not data:
            return ChainRevert("Revert", data=data, tx_hash=tx_hash)
        known = self._errors.get(bytes(data[:4]))
        if known is None:
            return ChainRevert("Unknown", data=data, tx_hash=tx_hash)
        name, names, types = known
        try:
            values = eth_abi.decode(types, bytes(data[4:]))
        except DecodingError:
            return ChainRevert("Unknown", data=data, tx_hash=tx_hash)
        values = [checksum_address(v) if t == "address" else v for t, v in zip(types, values)]
        return ChainRevert(name, dict(zip(names, values)), data=data, tx_hash=tx_hash)

    def from_exception(self, error: BaseException, *, tx_hash: str | None = None) -> ChainRevert | None:
        """Decode a backend's revert exception; None when ``error`` is not a revert at all."""
        if isinstance(error, TransactionFailed):
            message = str(error.args[0]) if error.args else ""
            if not message.startswith(ETH_TESTER_REVERT_PREFIX):
                # Not a REVERT opcode (out of gas, invalid opcode): there is no data to decode.
                return ChainRevert("Revert", {"reason": message}, tx_hash=tx_hash)
            return self.decode(eth_tester_revert_data(message), tx_hash=tx_hash)
        if isinstance(error, ContractLogicError):
            return self.decode(_rpc_revert_data(error.data), tx_hash=tx_hash)
        return None


def _canonical_type(param: dict[str, Any]) -> str:
    """ABI type string used in selectors; tuples expand to their component types."""
    kind = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical_type(c) for c in param["components"]) + ")" + kind[len("tuple"):]
    return kind


def eth_tester_revert_data(message: str) -> bytes:
    # eth-tester formats the revert as "execution reverted: b'...'" (a Python bytes literal), except
    # Error(string), which it decodes to the bare reason: re-encode that so both paths agree.
    body = message.removeprefix(ETH_TESTER_REVERT_PREFIX)
    if body.startswith(("b'", 'b"')):
        return ast.literal_eval(body)
    return bytes.fromhex("08c379a0") + eth_abi.encode(["string"], [body])


def _rpc_revert_data(data: str | dict[str, Any] | None) -> bytes:
    # Nodes disagree on the shape: geth/anvil give a hex string, some wrap it as {"data": "0x..."}.
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    return b""
