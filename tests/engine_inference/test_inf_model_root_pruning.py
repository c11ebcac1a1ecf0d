"""Issue #17: the model root is bounded (`ModelStore(root, max_bytes=...)`): least recently used adapters
are removed first until it fits, never one a server holds (its own loads, a load in progress, another
server's lease in a shared root) nor one used in the last minutes; bases are counted, never removed.
The real model server prunes its root after each load over HTTP and keeps its lease current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch
from model_server_support import ROOT
from transformers import AutoModelForCausalLM

from inference.client import ServerConnection
from inference.engine import pruning
from inference.engine.model_store import ModelStore, publish_adapter, publish_base
from inference.engine.server import ServerConfigError, default_model_root_max_bytes, serve
from inference.engine.testing import build_tiny_llama, save_random_adapter

torch.set_num_threads(1)
TOKEN = "prune-token"
BASE = "llama:causal_lm"
KIB = 1024
HOUR = 3600.0


def _adapter(root, version: str, size: int, *, used_hours_ago: float):
    """A published adapter directory of `size` bytes (plus its small config), last used that long ago."""
    directory = root / "adapters" / version
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text("{}")
    (directory / "adapter_model.safetensors").write_bytes(b"\0" * size)
    stamp = time.time() - used_hours_ago * HOUR
    os.utime(directory, (stamp, stamp))
    return directory


@pytest.fixture
def root(tmp_path):
    """Adapters a (oldest), b, c (newest) of 10, 20 and 30 KiB, and a 50 KiB base."""
    root = tmp_path / "root"
    for version, size, hours in (("a", 10 * KIB, 30), ("b", 20 * KIB, 20), ("c", 30 * KIB, 10)):
        _adapter(root, version, size, used_hours_ago=hours)
    (root / "bases" / "base-1").mkdir(parents=True)
    (root / "bases" / "base-1" / "config.json").write_bytes(b"\0" * 50 * KIB)
    return root


def _versions(root) -> list[str]:
    return sorted(p.name for p in (root / "adapters").iterdir())


def test_least_recently_used_adapters_go_first_until_the_root_fits(root):
    total = pruning.tree_bytes(root)
    assert total == (10 + 20 + 30 + 50) * KIB + 3 * 2  # every file once; the configs are "{}"
    store = ModelStore(root, max_bytes=total - 15 * KIB)  # a (10 KiB) is not enough, b too is
    planned = store.prune(dry_run=True)
    assert [e.version for e in planned.remove] == ["a", "b"] and not planned.removed
    assert _versions(root) == ["a", "b", "c"]  # a dry run removes nothing
    done = store.prune()
    assert [e.version for e in done.removed] == ["a", "b"] and not done.over
    assert _versions(root) == ["c"] and (root / "bases" / "base-1" / "config.json").is_file()
    assert pruning.tree_bytes(root) == done.after_bytes <= store.max_bytes
    assert not list((root / "adapters").glob(".evicted-*"))  # set aside, then deleted
    assert store.prune().remove == []  # fits now: nothing more goes


def test_within_the_bound_or_unbounded_nothing_is_removed(root):
    assert ModelStore(root, max_bytes=pruning.tree_bytes(root)).prune().remove == []
    unbounded = ModelStore(root, max_bytes=0)
    assert unbounded.max_bytes is None and unbounded.prune(max_bytes=None).remove == []
    assert _versions(root) == ["a", "b", "c"]


def test_adapters_in_use_held_or_leased_are_never_removed(root):
    store = ModelStore(root, max_bytes=1)  # far over: everything removable would go
    lease_of_another_server = "another-server"
    pruning.lease_write(root, lease_of_another_server, ["b"])
    with store.holding_adapter("c") as held:  # a load in progress
        assert held == root / "adapters" / "c"
        store.min_age_s = 0  # holding touched c: only the hold protects it here
        result = store.prune(in_use=lambda: {"a"})  # "a" is loaded by this server
    assert result.removed == [] and [e.version for e in result.in_use] == ["a", "b", "c"]
    assert result.over and _versions(root) == ["a", "b", "c"]

    stale = time.time() - pruning.LEASE_TTL_S - HOUR  # a server that died without removing its lease
    os.utime(pruning.lease_path(root, lease_of_another_server), (stale, stale))
    result = store.prune(in_use={"a"})
    assert [e.version for e in result.removed] == ["b", "c"] and _versions(root) == ["a"]


def test_recently_used_adapters_are_kept_and_a_touch_moves_an_adapter_last(root):
    store = ModelStore(root, max_bytes=1, min_age_s=15 * HOUR)  # b (20 h) and a (30 h) are old, c (10 h) is not
    planned = store.prune(dry_run=True)
    assert [e.version for e in planned.remove] == ["a", "b"] and [e.version for e in planned.recent] == ["c"]
    assert planned.over  # still over once they are gone: c and the base are left
    store.touch_adapter("a")  # loaded or unloaded now
    assert [e.version for e in pruning.adapter_entries(root)] == ["b", "c", "a"]
    result = store.prune()
    assert [e.version for e in result.removed] == ["b"] and [e.version for e in result.recent] == ["c", "a"]
    assert _versions(root) == ["a", "c"]
    store.touch_adapter("../b")  # not an id: ignored
    store.touch_adapter("b")  # gone: ignored


def test_staging_directories_links_and_bad_bounds(root, tmp_path):
    (root / "adapters" / ".x.tmp123").mkdir()  # a publish in progress: never a candidate
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "adapters" / "linked").symlink_to(outside, target_is_directory=True)
    assert [e.version for e in pruning.adapter_entries(root)] == ["a", "b", "c"]
    (root / "bases" / "base-1" / "hard-link").hardlink_to(root / "bases" / "base-1" / "config.json")
    assert pruning.tree_bytes(root / "bases") == 50 * KIB  # a hard link counts once
    for bad in (-1, 1.5, True, "20G"):
        with pytest.raises(ValueError, match="max_bytes must be a whole number of bytes"):
            ModelStore(root, max_bytes=bad)
    with pytest.raises(ValueError, match="max_bytes must be a number of bytes >= 0"):
        pruning.plan(root, max_bytes=-5)


def test_the_bound_comes_from_the_environment_or_defaults_to_20_gib(monkeypatch):
    monkeypatch.delenv("INFERENCE_MODEL_ROOT_MAX_BYTES", raising=False)
    assert default_model_root_max_bytes() == 20 * 2**30
    monkeypatch.setenv("INFERENCE_MODEL_ROOT_MAX_BYTES", "0")
    assert default_model_root_max_bytes() == 0
    monkeypatch.setenv("INFERENCE_MODEL_ROOT_MAX_BYTES", "20G")
    with pytest.raises(ServerConfigError, match="whole number of bytes"):
        default_model_root_max_bytes()
    refused = subprocess.run([sys.executable, "-m", "inference.engine.server", "--model-root-max-bytes", "-1"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--model-root-max-bytes must be a number of bytes >= 0" in refused.stderr


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A tiny Llama and three random adapters for it (their sha256 by name)."""
    work = tmp_path_factory.mktemp("prune-llama")
    llama_dir = build_tiny_llama(work / "llama")
    model = AutoModelForCausalLM.from_pretrained(llama_dir)
    shas = {name: save_random_adapter(model, work / name, rank=4, target_modules=["q_proj", "v_proj"], seed=i)
            for i, name in enumerate(("v-old", "v-mid", "v-new"))}
    return work, llama_dir, shas


def test_the_server_prunes_after_a_load_and_never_what_it_holds(llama, tmp_path):
    work, llama_dir, shas = llama
    root = tmp_path / "root"
    publish_base(root, "llama", llama_dir)
    for hours, version in ((30, "v-old"), (20, "v-mid"), (10, "v-new")):
        path = publish_adapter(root, version, work / version)
        os.utime(path, (time.time() - hours * HOUR,) * 2)
    one_adapter = pruning.tree_bytes(root / "adapters" / "v-old")
    # Room for the base and two adapters: one must go once the root is read.
    bound = pruning.tree_bytes(root) - one_adapter // 2
    running = serve(None, "127.0.0.1", 0, model_root=root, token=TOKEN, model_root_max_bytes=bound,
                    engine_defaults={"num_slots": 2, "max_rank": 8})
    threading.Thread(target=running.serve_forever, daemon=True).start()
    admin = ServerConnection(running.url, token=TOKEN, timeout=300)
    try:
        admin.load_base(name=BASE, model="llama", task="causal_lm")
        # The oldest adapter is the one loaded: it stays, the next oldest goes.
        admin.load_adapter(name="old", version="v-old", sha256=shas["v-old"], base=BASE)
        assert _versions(root) == ["v-new", "v-old"]
        lease = json.loads(pruning.lease_path(root, running.host.instance).read_text())
        assert lease["versions"] == ["v-old"]
        assert admin.generate("hello", adapter="old", max_tokens=3, temperature=0)["usage"]["completion_tokens"]

        # Unloaded, it is used "now": it goes after the ones untouched for longer.
        admin.unload_adapter(name="old")
        assert json.loads(pruning.lease_path(root, running.host.instance).read_text())["versions"] == []
        running.host.store.min_age_s = 0
        running.host.store.max_bytes = pruning.tree_bytes(root) - 1  # one more adapter must go
        admin.load_adapter(name="new", version="v-new", sha256=shas["v-new"], base=BASE)
        assert _versions(root) == ["v-new"]  # v-old went (unloaded); v-new is loaded
        assert admin.generate("hello", adapter="new", max_tokens=3, temperature=0)["usage"]["completion_tokens"]
        assert admin.status()["adapters"]["new"]["version"] == "v-new"
    finally:
        admin.close()
        running.shutdown()
        running.server_close()
        running.close_engines()
    assert not pruning.lease_path(root, running.host.instance).exists()  # removed at shutdown
