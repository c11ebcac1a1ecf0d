"""Issue #17, item 1: two commands on a fresh machine. `make test` checks the system packages the suite needs
(Debian's chromium for the browser tests, a C compiler for the serving kernel) before anything else: as root it
installs what is missing with apt-get; otherwise it stops at once and prints the exact command.

`.ci/system-packages` runs here as it is, with PATH holding only stand-ins for `id` (to be root or not) and
`apt-get` (which records its arguments instead of touching the machine): the script's decisions are real."""

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "system-packages"


def stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """A fake machine: `run(uid=..., have=...)` runs the script with only the named commands on PATH."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "apt-calls"
    bin_dir.mkdir()
    stand_in(bin_dir, "apt-get", f'echo "$@" >> {calls}')

    def run(*, uid: int, have: tuple[str, ...] = ()):
        stand_in(bin_dir, "id", f"echo {uid}")
        for name in ("chromium", "cc"):
            (bin_dir / name).unlink(missing_ok=True)
            if name in have:
                stand_in(bin_dir, name, "exit 0")
        env = {"PATH": str(bin_dir), "CHROMIUM_PATH": str(tmp_path / "no-chromium-here"), "HOME": str(tmp_path)}
        started = time.monotonic()
        result = subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
        apt = calls.read_text().splitlines() if calls.exists() else []
        calls.unlink(missing_ok=True)
        return result, apt, time.monotonic() - started

    return run


def test_without_root_it_stops_at_once_with_the_exact_command(machine):
    result, apt, seconds = machine(uid=1000)
    assert result.returncode == 1 and apt == [] and seconds < 5
    assert "sudo apt-get update && sudo apt-get install -y chromium gcc libc6-dev" in result.stderr
    result, apt, _ = machine(uid=1000, have=("cc",))
    assert result.returncode == 1 and apt == []
    assert "sudo apt-get install -y chromium\n" in result.stderr  # only what is missing


def test_as_root_it_installs_what_is_missing_with_apt_get(machine):
    result, apt, _ = machine(uid=0)
    assert result.returncode == 0, result.stderr
    assert apt == ["update -qq", "install -y -qq chromium gcc libc6-dev"]
    result, apt, _ = machine(uid=0, have=("chromium",))
    assert result.returncode == 0 and apt == ["update -qq", "install -y -qq gcc libc6-dev"]


def test_with_everything_present_it_does_nothing(machine):
    for uid in (0, 1000):
        result, apt, _ = machine(uid=uid, have=("chromium", "cc"))
        assert (result.returncode, apt, result.stderr) == (0, [], "")


def test_make_test_checks_the_system_before_installing_anything(tmp_path):
    # A fresh machine: no virtual environment yet, so `make test` would install one (minutes of pip) first.
    # Run as if from a shell: under `make test` (CI), MAKELEVEL and MAKEFLAGS would make this a sub-make that
    # prints "Entering directory" first.
    shell_env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    plan = subprocess.run(["make", "-n", "--no-print-directory", "test", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=shell_env)
    assert plan.returncode == 0, plan.stderr
    lines = [line for line in plan.stdout.splitlines() if line.strip()]
    assert lines[0] == "bash .ci/system-packages"
    assert any("pip install" in line for line in lines) and any("ruff check" in line for line in lines)
    assert lines[-1].endswith("-m pytest")
