"""Issue #17: `manage.py inference_prune_model_root [--dry-run]` keeps the model root under
`INFERENCE_MODEL_ROOT_MAX_BYTES`, least recently used adapters first, and never removes one that is
deployed, held by a model server (what its `/v1/health` reports, or its lease in the root) or recently
used; a server that does not answer is reported, and removals are audited."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch
from django.core.management import CommandError, call_command
from model_server_support import free_port
from transformers import AutoModelForCausalLM

from accounts.models import AuditEvent
from inference.engine import pruning
from inference.engine.model_store import publish_adapter, publish_base
from inference.engine.server import serve
from inference.engine.testing import build_tiny_llama, save_random_adapter
from models_registry.models import BaseModel, FineTuneJob, ModelVersion

pytestmark = pytest.mark.django_db
TOKEN = "prune-command-token"
HOUR = 3600.0


def _age(path, hours: float) -> None:
    stamp = time.time() - hours * HOUR
    os.utime(path, (stamp, stamp))


@pytest.fixture
def fleet_root(tmp_path, settings, alice):
    """The root the command prunes holds five adapters, oldest first: `deployed` (a deployed model version's
    hash), `on-server` (loaded on a live model server with its own root), `leased` (named by another server's
    lease in this root), `stale` and `stale-2` (nobody's); plus a base. A second configured server is down."""
    torch.set_num_threads(1)
    work, root, server_root = tmp_path / "work", tmp_path / "root", tmp_path / "server-root"
    llama_dir = build_tiny_llama(work / "llama")
    sha = save_random_adapter(AutoModelForCausalLM.from_pretrained(llama_dir), work / "adapter", rank=4,
                              target_modules=["q_proj", "v_proj"])
    deployed_hash = "d" * 64
    for hours, version in ((50, deployed_hash), (40, "on-server"), (30, "leased"), (20, "stale"), (10, "stale-2")):
        _age(publish_adapter(root, version, work / "adapter"), hours)
    publish_base(root, "llama", llama_dir)
    pruning.lease_write(root, "another-server", ["leased"])

    publish_base(server_root, "llama", llama_dir)
    publish_adapter(server_root, "on-server", work / "adapter")
    server = serve(None, "127.0.0.1", 0, model_root=server_root, token=TOKEN,
                   engine_defaults={"num_slots": 2, "max_rank": 8})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from inference.client import ServerConnection

    admin = ServerConnection(server.url, token=TOKEN, timeout=300)
    admin.load_base(name="llama:causal_lm", model="llama", task="causal_lm")
    admin.load_adapter(name="held", version="on-server", sha256=sha, base="llama:causal_lm")
    admin.close()

    base = BaseModel.objects.create(name="Tiny", slug="tiny", source_kind="local", source_ref="tiny",
                                    architecture="llama", task_types=["instruction"])
    job = FineTuneJob.objects.create(owner=alice, name="writer", base_model=base, task="instruction")
    ModelVersion.objects.create(job=job, owner=alice, base_model=base, name="Writer", slug="writer",
                                version_hash=deployed_hash, task="instruction", label_names=[],
                                storage_prefix="models/writer", manifest={}, price_per_inference=0, deployed=True)

    down = f"http://127.0.0.1:{free_port()}"
    settings.INFERENCE_MODEL_ROOT = root
    settings.INFERENCE_MODEL_ROOT_MAX_BYTES = 1  # far over: everything removable goes
    settings.INFERENCE_SERVER_URL = f"{server.url},{down}"
    settings.INFERENCE_SERVER_TOKEN = TOKEN
    yield root, deployed_hash, down
    server.shutdown()
    server.server_close()
    server.close_engines()


def _adapters(root) -> list[str]:
    return sorted(path.name for path in (root / "adapters").iterdir())


def test_dry_run_reports_and_removes_nothing_then_a_run_removes_and_audits(fleet_root, capsys):
    root, deployed_hash, down = fleet_root
    before = _adapters(root)
    call_command("inference_prune_model_root", "--dry-run")
    out, err = capsys.readouterr()
    assert _adapters(root) == before and not AuditEvent.objects.filter(action="inference.model_root_pruned").exists()
    assert f"model root {root.resolve()}:" in out and "of 1 B" in out
    assert "would remove adapters/stale (" in out and "would remove adapters/stale-2 (" in out
    for kept in (deployed_hash, "on-server", "leased"):
        assert f"kept adapters/{kept}: in use" in out
    assert "would remove adapters/on-server" not in out and "would remove adapters/leased" not in out
    assert f"model server {down} did not answer" in err
    assert "still over the bound" in err  # the base and the adapters in use are left

    call_command("inference_prune_model_root")
    out, _ = capsys.readouterr()
    assert "removed adapters/stale (" in out and "removed adapters/stale-2 (" in out
    assert _adapters(root) == sorted([deployed_hash, "leased", "on-server"])
    event = AuditEvent.objects.get(action="inference.model_root_pruned")
    assert sorted(r["version"] for r in event.details["removed"]) == ["stale", "stale-2"]
    assert event.details["root"] == str(root.resolve())


def test_least_recently_used_go_first_and_a_recent_one_is_spared(fleet_root, settings, capsys):
    root, _, _ = fleet_root
    _age(root / "adapters" / "stale-2", 0.01)  # used 36 s ago: recent under the default 10 minutes
    one = pruning.tree_bytes(root / "adapters" / "stale")
    settings.INFERENCE_MODEL_ROOT_MAX_BYTES = pruning.tree_bytes(root) - one // 2  # one adapter must go
    call_command("inference_prune_model_root")
    out, _ = capsys.readouterr()
    assert "removed adapters/stale (" in out and "stale-2" not in out  # the oldest removable went first
    call_command("inference_prune_model_root", "--max-bytes", "1")
    out, _ = capsys.readouterr()
    assert "kept adapters/stale-2: used in the last 10 min" in out and "stale-2" in _adapters(root)
    call_command("inference_prune_model_root", "--max-bytes", "1", "--min-age", "0")
    assert "stale-2" not in _adapters(root)


def test_within_the_bound_nothing_is_removed(fleet_root, capsys):
    root, _, _ = fleet_root
    before = _adapters(root)
    call_command("inference_prune_model_root", "--max-bytes", str(pruning.tree_bytes(root)))
    assert "within its bound: nothing to remove" in capsys.readouterr().out
    call_command("inference_prune_model_root", "--max-bytes", "0")  # 0: no bound
    assert "of no bound" in capsys.readouterr().out and _adapters(root) == before


def test_bad_arguments_are_refused_with_what_to_do(settings, tmp_path):
    settings.INFERENCE_MODEL_ROOT = tmp_path / "root"
    (tmp_path / "root").mkdir()
    settings.INFERENCE_SERVER_URL = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CommandError, match=r"bytes >= 0 \(0: no bound\)"):
        call_command("inference_prune_model_root", "--max-bytes", "-1")
    with pytest.raises(CommandError, match="--min-age must be a number of seconds >= 0"):
        call_command("inference_prune_model_root", "--min-age", "-5")
    with pytest.raises(CommandError, match="does not exist on this machine"):
        call_command("inference_prune_model_root", "--root", str(tmp_path / "missing"))
    settings.INFERENCE_MODEL_ROOT_MAX_BYTES = -1  # the model server refuses the same bad setting before starting
    with pytest.raises(CommandError, match="INFERENCE_MODEL_ROOT_MAX_BYTES must be a number of bytes >= 0"):
        call_command("serve_models", "--once", "--port", str(free_port()))
