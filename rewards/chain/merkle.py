"""Cumulative reward Merkle trees, byte-compatible with ``@openzeppelin/merkle-tree``.

The tree is exactly ``StandardMerkleTree.of(values, ["address", "uint256"])``:

* leaf = keccak256(keccak256(abi.encode(account, cumulativeAmount))), which is what the distributor
  contract recomputes (the double hash rules out second-preimage attacks with 64-byte nodes);
* internal node = keccak256 of the two children sorted as bytes, so proofs carry no left/right flags
  and OpenZeppelin's ``MerkleProof.verify`` accepts them;
* leaves are sorted by hash and stored as a complete binary tree in one array (root at index 0,
  children of i at 2i+1 and 2i+2, the k-th smallest leaf at ``len(tree) - 1 - k``).

Matching the npm package exactly (same root, same proofs, same ``dump()`` JSON) lets wallets and
third-party claim UIs use the standard JavaScript tooling against trees the platform builds in Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .hashing import checksum_address, checksum_addresses, keccak256

LEAF_ENCODING: tuple[str, str] = ("address", "uint256")
DUMP_FORMAT = "standard-v1"
_UINT256_LIMIT = 1 << 256
_ADDRESS_PAD = bytes(12)


def leaf_hash(account: str, cumulative_amount: int) -> bytes:
    """Leaf of (account, cumulative_amount) as the contract computes it."""
    return _leaf_hash(bytes.fromhex(checksum_address(account)[2:]), cumulative_amount)


def _leaf_hash(account_bytes: bytes, cumulative_amount: int) -> bytes:
    # abi.encode(address, uint256): the address left-padded to 32 bytes, then the amount big-endian.
    return keccak256(keccak256(_ADDRESS_PAD + account_bytes + cumulative_amount.to_bytes(32, "big")))


def node_hash(a: bytes, b: bytes) -> bytes:
    """Parent of two nodes: hash of the pair in ascending byte order (OpenZeppelin's commutative hash)."""
    return keccak256(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes | str]) -> bytes:
    """Fold a proof onto a leaf, as ``MerkleProof.processProof`` does on chain."""
    node = leaf
    for sibling in proof:
        node = node_hash(node, _as_bytes32(sibling))
    return node


def verify_proof(root: bytes | str, account: str, cumulative_amount: int, proof: Sequence[bytes | str]) -> bool:
    """True when ``proof`` proves (account, cumulative_amount) under ``root``."""
    return process_proof(leaf_hash(account, cumulative_amount), proof) == _as_bytes32(root)


@dataclass(frozen=True, slots=True)
class RewardEntry:
    """One leaf: everything ``account`` has ever earned, in token base units (wei of OPEN)."""

    account: str
    cumulative_amount: int


class CumulativeRewardsTree:
    """Merkle tree over (account, cumulative amount) pairs for one distributor epoch.

    Build it with :meth:`build` (or :meth:`load` from a previous :meth:`dump`); publish :attr:`root`,
    :attr:`total_cumulative` and :meth:`dump_hash` with ``setMerkleRoot``; serve :meth:`proof` to
    claimants.
    """

    __slots__ = ("_entries", "_index_of", "_tree", "_tree_index")

    def __init__(self, entries: list[RewardEntry], tree: list[bytes], tree_index: list[int]) -> None:
        # Private: use build() or load(), which guarantee the three lists agree.
        self._entries = entries
        self._tree = tree
        self._tree_index = tree_index
        self._index_of = {entry.account: i for i, entry in enumerate(entries)}

    @classmethod
    def build(cls, entries: Mapping[str, int] | Iterable[tuple[str, int]]) -> CumulativeRewardsTree:
        """Build the tree from ``{account: cumulative_amount}`` or (account, amount) pairs.

        Accounts are normalised to EIP-55; an account listed twice is refused because the contract
        keeps one cumulative figure per account and a second leaf would be an unclaimable surprise.
        The given order is kept for :meth:`dump` (like the npm package); the tree itself is ordered
        by leaf hash, so the root does not depend on the input order.
        """
        pairs = list(entries.items() if isinstance(entries, Mapping) else entries)
        if not pairs:
            raise ValueError("a Merkle tree needs at least one entry")
        normalised: list[RewardEntry] = []
        leaves: list[bytes] = []
        seen: set[str] = set()
        for checksummed, (_, amount) in zip(checksum_addresses([account for account, _ in pairs]), pairs):
            if checksummed in seen:
                raise ValueError(f"account {checksummed} appears twice")
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount < _UINT256_LIMIT:
                raise ValueError(f"cumulative amount for {checksummed} must be a uint256 int, got {amount!r}")
            seen.add(checksummed)
            normalised.append(RewardEntry(checksummed, amount))
            leaves.append(_leaf_hash(bytes.fromhex(checksummed[2:]), amount))

        count = len(leaves)
        size = 2 * count - 1
        tree: list[bytes] = [b""] * size
        tree_index = [0] * count
        for rank, value_index in enumerate(sorted(range(count), key=leaves.__getitem__)):
            position = size - 1 - rank
            tree[position] = leaves[value_index]
            tree_index[value_index] = position
        for i in range(size - 1 - count, -1, -1):
            tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
        return cls(normalised, tree, tree_index)

    @property
    def root(self) -> bytes:
        return self._tree[0]

    @property
    def root_hex(self) -> str:
        return "0x" + self._tree[0].hex()

    @property
    def total_cumulative(self) -> int:
        """Sum of all cumulative amounts: what the distributor must be able to pay for this root."""
        return sum(entry.cumulative_amount for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, account: object) -> bool:
        return isinstance(account, str) and self._lookup(account) is not None

    def entries(self) -> list[RewardEntry]:
        """Entries in the order they were given."""
        return list(self._entries)

    def amount_of(self, account: str) -> int:
        """Cumulative amount of ``account``; KeyError if it is not in the tree."""
        return self._entries[self._require(account)].cumulative_amount

    def proof(self, account: str) -> list[bytes]:
        """Sibling hashes from the account's leaf up to the root (the ``bytes32[] proof`` argument)."""
        index = self._tree_index[self._require(account)]
        proof: list[bytes] = []
        while index > 0:
            proof.append(self._tree[index + 1 if index % 2 else index - 1])
            index = (index - 1) // 2
        return proof

    def proof_hex(self, account: str) -> list[str]:
        """:meth:`proof` as 0x-hex strings, the form ``StandardMerkleTree.getProof`` returns."""
        return ["0x" + node.hex() for node in self.proof(account)]

    def dump(self) -> dict:
        """JSON-ready dict in ``StandardMerkleTree.dump()``'s ``standard-v1`` format.

        Amounts are decimal strings because JSON numbers lose precision beyond 2**53.
        """
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": ["0x" + node.hex() for node in self._tree],
            "values": [
                {"value": [entry.account, str(entry.cumulative_amount)], "treeIndex": position}
                for entry, position in zip(self._entries, self._tree_index)
            ],
        }

    def dump_json(self) -> str:
        """Canonical compact JSON text of :meth:`dump`; what :meth:`dump_hash` commits to."""
        return json.dumps(self.dump(), separators=(",", ":"))

    def dump_hash(self) -> bytes:
        """keccak256 of :meth:`dump_json`, published on chain as ``treeHash`` so anyone holding the
        dump can check it is the one behind the root."""
        return keccak256(self.dump_json().encode("utf-8"))

    @classmethod
    def load(cls, data: Mapping | str) -> CumulativeRewardsTree:
        """Rebuild a tree from a :meth:`dump` (dict or JSON text) and check it, like the npm ``load``.

        The tree is recomputed from the values rather than trusted, so a tampered dump raises.
        """
        dump = json.loads(data) if isinstance(data, str) else data
        if dump.get("format") != DUMP_FORMAT:
            raise ValueError(f"unknown Merkle dump format {dump.get('format')!r}")
        if list(dump.get("leafEncoding", ())) != list(LEAF_ENCODING):
            raise ValueError(f"leaf encoding must be {list(LEAF_ENCODING)}, got {dump.get('leafEncoding')!r}")
        tree = cls.build((item["value"][0], int(item["value"][1])) for item in dump["values"])
        if tree.dump()["tree"] != [node.lower() for node in dump["tree"]] or tree._tree_index != [
            item["treeIndex"] for item in dump["values"]
        ]:
            raise ValueError("Merkle dump is inconsistent: its tree does not match its values")
        return tree

    def _lookup(self, account: str) -> int | None:
        if account in self._index_of:  # already checksummed: skip the hashing
            return self._index_of[account]
        try:
            return self._index_of.get(checksum_address(account))
        except ValueError:
            return None

    def _require(self, account: str) -> int:
        index = self._lookup(account)
        if index is None:
            raise KeyError(f"{account} is not in this tree")
        return index


def _as_bytes32(node: bytes | str) -> bytes:
    raw = bytes.fromhex(node[2:] if node.startswith("0x") else node) if isinstance(node, str) else bytes(node)
    if len(raw) != 32:
        raise ValueError(f"a Merkle node is 32 bytes, got {len(raw)}")
    return raw
