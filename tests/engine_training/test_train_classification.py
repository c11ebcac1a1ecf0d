"""End to end text classification on a tiny BERT: quality, export, plain-peft reload, verification."""

import io
import json
import math
import shutil
import zipfile
from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models_registry.training import (
    BaseModelSource,
    TrainingSpec,
    build_tiny_encoder_model,
    encode_classification,
    export_adapter_zip,
    load_trained,
    plan_data,
    predict_labels,
    read_manifest,
    run_training,
    verify_model_version,
)
from models_registry.training.synthetic import INTENT_LABELS, synthetic_intent_rows

torch.set_num_threads(1)
LABELS = INTENT_LABELS[:3]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classification")
    rows = synthetic_intent_rows(150, seed=1, labels=LABELS)
    base_dir = build_tiny_encoder_model(root / "base", [r.fields["text"] for r in rows])
    spec = TrainingSpec(
        task="text-classification",
        base=BaseModelSource("path", str(base_dir)),
        label_names=LABELS,
        epochs=10,
        batch_size=8,
        learning_rate=3e-2,
        eval_fraction=0.25,
        max_seq_length=32,
    )
    events = []
    result = run_training(
        spec, rows, root / "work", on_progress=events.append, dataset_versions={"datanet:intents": "v1-sha"}
    )
    return SimpleNamespace(root=root, rows=rows, spec=spec, base_dir=base_dir, result=result, events=events)


def test_fine_tuned_classifier_beats_the_base_model(trained):
    metrics, base = trained.result.metrics, trained.result.base_metrics
    assert metrics["accuracy"] >= 0.8
    assert metrics["accuracy"] > base["accuracy"] + 0.3
    assert metrics["macro_f1"] > base["macro_f1"]
    assert metrics["loss"] < base["loss"]
    plan = plan_data(trained.spec, trained.rows)
    confusion = metrics["confusion_matrix"]
    assert sum(map(sum, confusion)) == len(plan.eval_rows) == metrics["n_examples"]
    # Stratified split: every label is in eval, in proportion.
    assert [sum(row) for row in confusion] == [len(plan.eval_rows) // len(LABELS)] * len(LABELS)


def test_engine_metrics_agree_with_predictions_of_the_reloaded_model(trained):
    loaded = load_trained(trained.result.model_dir)
    plan = plan_data(trained.spec, trained.rows)
    predicted = predict_labels(loaded.model, loaded.tokenizer, [r.fields["text"] for r in plan.eval_rows], 32)
    correct = sum(p == r.fields["label"] for p, r in zip(predicted, plan.eval_rows, strict=True))
    assert correct / len(plan.eval_rows) == trained.result.metrics["accuracy"]


def test_exported_adapter_loads_with_plain_peft_and_predicts_identically(trained, tmp_path):
    with zipfile.ZipFile(io.BytesIO(export_adapter_zip(trained.result.model_dir))) as archive:
        archive.extractall(tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "lineage_manifest.json"} <= {
        p.name for p in (tmp_path / "adapter").iterdir()
    }
    # Plain transformers + peft, as a third party would do it: no engine code involved.
    base = AutoModelForSequenceClassification.from_pretrained(
        trained.base_dir, num_labels=len(LABELS), id2label=dict(enumerate(LABELS))
    )
    plain = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "adapter")
    engine = load_trained(trained.result.model_dir)
    texts = [r.fields["text"] for r in trained.rows[:40]] + [
        "play jazz in paris at noon",
        "an unseen sentence",
    ]
    batch = encode_classification(tokenizer, texts, None, 32)
    with torch.inference_mode():
        assert torch.equal(plain(**batch).logits, engine.model(**batch).logits)
    assert predict_labels(plain, tokenizer, texts, 32) == predict_labels(
        engine.model, engine.tokenizer, texts, 32
    )


def test_export_is_byte_identical_across_calls(trained):
    assert export_adapter_zip(trained.result.model_dir) == export_adapter_zip(trained.result.model_dir)


def test_manifest_records_rows_contributors_and_provenance(trained):
    content = read_manifest(trained.result.model_dir)["content"]
    by_id = {r.row_id: r for r in trained.rows}
    assert content["data"]["row_contributors"] == {r.row_id: r.contributor_id for r in trained.rows}
    assert content["dataset_versions"] == {"datanet:intents": "v1-sha"}
    assert len(content["data"]["epoch_row_ids"]) == trained.spec.epochs
    for epoch_ids in content["data"]["epoch_row_ids"]:
        assert sorted(epoch_ids) == content["data"]["train_row_ids"]
    assert not set(content["data"]["train_row_ids"]) & set(content["data"]["eval_row_ids"])
    assert set(content["data"]["train_row_ids"]) | set(content["data"]["eval_row_ids"]) == set(by_id)
    assert content["lora"]["target_modules"] == ["query", "value"]
    assert "classifier" in content["lora"]["modules_to_save"]
    assert content["hyperparameters"] == trained.spec.to_dict()
    assert TrainingSpec.from_dict(content["hyperparameters"]) == trained.spec
    assert set(content["software"]) >= {"torch", "transformers", "peft", "engine_code_sha256"}


def test_progress_events_describe_the_run(trained):
    events = trained.events
    assert events[0].message == "starting" and events[0].step == 0
    assert events[-1].message == "done" and events[-1].step == events[-1].total_steps
    steps = [e.step for e in events]
    assert steps == sorted(steps)
    losses = [e.loss for e in events if e.loss is not None]
    assert losses and all(math.isfinite(x) for x in losses)
    assert all(e.examples_per_s > 0 for e in events[1:])
    # 1-based: the epoch of the step just finished, of the run's epochs.
    assert all(1 <= e.epoch <= e.total_epochs == trained.spec.epochs for e in events)
    assert events[-1].epoch == trained.spec.epochs
    # Each epoch is logged once, in order, when its last step is done.
    epoch_lines = [e.message.split(" done")[0] for e in events if e.message.startswith("epoch ")]
    assert epoch_lines == [f"epoch {n}/{trained.spec.epochs}" for n in range(1, trained.spec.epochs + 1)]


def test_verification_detects_tampering(trained, tmp_path):
    assert verify_model_version(trained.result.model_dir).ok
    copy = shutil.copytree(trained.result.model_dir, tmp_path / "copy")
    manifest_path = copy / "lineage_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["content"]["data"]["row_contributors"]["row-00000"] = "someone-else"
    manifest_path.write_text(json.dumps(manifest))
    report = verify_model_version(copy)
    assert not report.ok and report.computed_id != report.recorded_id and not report.changed_files

    copy2 = shutil.copytree(trained.result.model_dir, tmp_path / "copy2")
    adapter = copy2 / "adapter_model.safetensors"
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 0xFF
    adapter.write_bytes(bytes(data))
    report = verify_model_version(copy2)
    assert not report.ok and report.changed_files == ("adapter_model.safetensors",)
