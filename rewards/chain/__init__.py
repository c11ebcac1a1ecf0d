"""On-chain side of Lineage rewards: a Django-free engine.

Contributors' cumulative earnings are published each epoch as one Merkle root on a
``CumulativeMerkleDistributor``; anyone can then claim for an account with its proof. This package
builds the trees (byte-compatible with ``@openzeppelin/merkle-tree``), deploys and drives the
contracts (in-process py-evm chain or any JSON-RPC node), reads their events for reconciliation, and
verifies Sign-In-with-Ethereum messages that link wallets to users.
"""

from .artifacts import ContractArtifact, load_artifact
from .client import ChainClient, InProcessChain, NonceTracker, TransactionPolicy, TxResult
from .contracts import (
    ClaimedEvent,
    ClaimRequest,
    DistributorContract,
    LogPage,
    LogPosition,
    RewardsDeployment,
    RootUpdatedEvent,
    TokenContract,
    TokenDeposit,
    deploy_rewards,
)
from .errors import ChainError, ChainRevert, ChainSendError, RevertDecoder, TransactionTimeout
from .hashing import checksum_address, checksum_addresses, keccak256
from .merkle import CumulativeRewardsTree, RewardEntry, leaf_hash, node_hash, process_proof, verify_proof

__all__ = [
    "ChainClient",
    "ChainError",
    "ChainRevert",
    "ChainSendError",
    "ClaimRequest",
    "ClaimedEvent",
    "ContractArtifact",
    "CumulativeRewardsTree",
    "DistributorContract",
    "InProcessChain",
    "LogPage",
    "LogPosition",
    "NonceTracker",
    "RevertDecoder",
    "RewardEntry",
    "RewardsDeployment",
    "RootUpdatedEvent",
    "TokenContract",
    "TokenDeposit",
    "TransactionPolicy",
    "TransactionTimeout",
    "TxResult",
    "checksum_address",
    "checksum_addresses",
    "deploy_rewards",
    "keccak256",
    "leaf_hash",
    "load_artifact",
    "node_hash",
    "process_proof",
    "verify_proof",
]
