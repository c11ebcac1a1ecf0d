"""The committed ABI/bytecode artifacts must be exactly what the pinned compiler makes of the sources."""

import shutil
import subprocess
from pathlib import Path

import pytest

from rewards.chain.artifacts import ARTIFACTS_DIR, CONTRACT_NAMES, load_artifact

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def test_artifacts_recompile_byte_for_byte(tmp_path):
    if shutil.which("node") is None:
        pytest.fail("node is not installed: recompiling the contracts needs Node.js (CI installs it)")
    if not (CONTRACTS_DIR / "node_modules" / "solc").is_dir():
        pytest.fail("contracts/node_modules is missing: run `npm ci --prefix contracts` first")
    subprocess.run(["node", "compile.mjs", "--out", str(tmp_path)], cwd=CONTRACTS_DIR, check=True,
                   capture_output=True, timeout=300)
    for name in CONTRACT_NAMES:
        assert (tmp_path / f"{name}.json").read_bytes() == (ARTIFACTS_DIR / f"{name}.json").read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in ARTIFACTS_DIR.glob("*.json"))


def test_artifacts_pin_compiler_and_evm_target():
    for name in CONTRACT_NAMES:
        artifact = load_artifact(name)
        assert artifact.compiler_version.startswith("0.8.37+")
        assert artifact.compiler_settings == {"evmVersion": "prague", "optimizer": {"enabled": True, "runs": 200}}
        assert artifact.bytecode.startswith("0x") and len(artifact.deployed_bytecode) > 1000
