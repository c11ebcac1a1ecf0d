"""The Python reward tree must equal @openzeppelin/merkle-tree's StandardMerkleTree, byte for byte."""

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from rewards.chain import (
    CumulativeRewardsTree,
    checksum_address,
    checksum_addresses,
    keccak256,
    leaf_hash,
    verify_proof,
)

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def random_entries(count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(checksum_address(rng.randbytes(20)), rng.randrange(1, 10**30)) for _ in range(count)]


def run_npm_reference(value_lists: list[list[list[str]]]) -> list[dict]:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the Merkle compatibility test needs Node.js (CI installs it)")
    if not (CONTRACTS_DIR / "node_modules" / "@openzeppelin" / "merkle-tree").is_dir():
        pytest.fail("contracts/node_modules is missing: run `npm ci --prefix contracts` first")
    completed = subprocess.run(["node", "merkle_reference.mjs"], cwd=CONTRACTS_DIR, input=json.dumps(value_lists),
                               capture_output=True, text=True, timeout=60, check=True)
    return json.loads(completed.stdout)


def test_root_proofs_and_dump_match_openzeppelin_merkle_tree():
    # Sizes cover a single leaf, odd counts (unbalanced trees) and several proof depths.
    entry_lists = [random_entries(count, seed=count) for count in (1, 2, 3, 7, 64, 301)]
    references = run_npm_reference([[[account, str(amount)] for account, amount in entries]
                                    for entries in entry_lists])
    for entries, reference in zip(entry_lists, references, strict=True):
        tree = CumulativeRewardsTree.build(entries)
        assert tree.root_hex == reference["root"], len(entries)
        assert [tree.proof_hex(account) for account, _ in entries] == reference["proofs"]
        assert tree.dump() == reference["dump"]


def test_lowercase_input_is_checksummed_and_gives_the_same_tree():
    entries = random_entries(20, seed=1)
    lowered = CumulativeRewardsTree.build([(account.lower(), amount) for account, amount in entries])
    assert lowered.root == CumulativeRewardsTree.build(entries).root
    assert [entry.account for entry in lowered.entries()] == [account for account, _ in entries]


def test_root_does_not_depend_on_input_order_and_every_proof_verifies():
    entries = random_entries(50, seed=2)
    tree = CumulativeRewardsTree.build(entries)
    assert CumulativeRewardsTree.build(list(reversed(entries))).root == tree.root
    for account, amount in entries:
        assert verify_proof(tree.root, account, amount, tree.proof(account))
        assert not verify_proof(tree.root, account, amount + 1, tree.proof(account))


def test_batch_checksums_match_eth_utils():
    rng = random.Random(4)
    raw = [rng.randbytes(20) for _ in range(500)]
    expected = [to_checksum_address(address) for address in raw]
    assert checksum_addresses(raw) == expected
    assert checksum_addresses(["0x" + address.hex().upper() for address in raw]) == expected
    assert checksum_addresses(expected) == expected
    assert [checksum_address("0x" + address.hex()) for address in raw[:20]] == expected[:20]


def test_leaf_is_double_hashed_abi_encoding():
    account = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    encoded = bytes(12) + bytes.fromhex(account[2:]) + (1234).to_bytes(32, "big")
    assert leaf_hash(account, 1234) == keccak256(keccak256(encoded))


def test_dump_load_round_trip_and_tamper_detection():
    tree = CumulativeRewardsTree.build(random_entries(30, seed=3))
    loaded = CumulativeRewardsTree.load(tree.dump_json())
    assert loaded.root == tree.root
    assert loaded.dump_hash() == tree.dump_hash()

    tampered = tree.dump()
    tampered["values"][0]["value"][1] = str(int(tampered["values"][0]["value"][1]) + 1)
    with pytest.raises(ValueError, match="inconsistent"):
        CumulativeRewardsTree.load(tampered)


def test_bad_input_is_refused():
    account = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    with pytest.raises(ValueError, match="twice"):
        CumulativeRewardsTree.build([(account, 1), (account.lower(), 2)])
    with pytest.raises(ValueError, match="uint256"):
        CumulativeRewardsTree.build([(account, -1)])
    with pytest.raises(ValueError, match="checksum"):
        CumulativeRewardsTree.build([(account.replace("E", "e", 1), 1)])
    with pytest.raises(ValueError, match="at least one"):
        CumulativeRewardsTree.build({})
    with pytest.raises(KeyError):
        CumulativeRewardsTree.build([(account, 1)]).proof("0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF")
