"""Committed compiler output (ABI + bytecode) of the Solidity sources in ``contracts/src``.

The engine deploys and talks to contracts from these JSON files so neither Django nor CI needs node
at run time; ``contracts/compile.mjs`` regenerates them and a test checks they are reproducible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
TOKEN_CONTRACT = "OpenToken"
DISTRIBUTOR_CONTRACT = "CumulativeMerkleDistributor"
# Governance (rewards/chain/governance.py): vOPEN, the timelock, the governor and the parameter registry.
VOTES_CONTRACT = "OpenVotes"
TIMELOCK_CONTRACT = "LineageTimelock"
GOVERNOR_CONTRACT = "LineageGovernor"
PARAMETERS_CONTRACT = "ProtocolParameters"
# Contributor stakes per Datanet (rewards/chain/staking.py).
STAKING_CONTRACT = "ContributorStakes"
CONTRACT_NAMES: tuple[str, ...] = (TOKEN_CONTRACT, DISTRIBUTOR_CONTRACT, VOTES_CONTRACT, TIMELOCK_CONTRACT,
                                   GOVERNOR_CONTRACT, PARAMETERS_CONTRACT, STAKING_CONTRACT)


@dataclass(frozen=True)
class ContractArtifact:
    """One compiled contract. ``source_hash`` covers every source file (ours and OpenZeppelin's)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    compiler_settings: dict[str, Any]
    source_hash: str


@cache
def load_artifact(name: str) -> ContractArtifact:
    """Load ``artifacts/<name>.json``; cached because the ABIs are immutable for a given checkout."""
    data = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    return ContractArtifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler_version=data["compiler"]["version"],
        compiler_settings=data["compiler"]["settings"],
        source_hash=data["sourceHash"],
    )
