"""Determinism, recorded data order, resume after cancel/crash, finished work_dir reuse."""

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from models_registry.training import (
    BaseModelSource,
    InvalidTrainingInput,
    TrainingCancelled,
    TrainingFailed,
    TrainingSpec,
    build_tiny_encoder_model,
    plan_data,
    run_training,
)
from models_registry.training.synthetic import INTENT_LABELS, synthetic_intent_rows

torch.set_num_threads(1)


def adapter_tensors(result):
    return load_file(result.model_dir / "adapter_model.safetensors")


def assert_same_weights(a, b):
    ta, tb = adapter_tensors(a), adapter_tensors(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    # Unique texts so a batch of token ids maps back to exactly one set of rows.
    rows = [r for r in synthetic_intent_rows(60, seed=3, labels=INTENT_LABELS[:3])]
    unique = {}
    for row in rows:
        unique.setdefault(row.fields["text"], row)
    rows = list(unique.values())[:45]
    base_dir = build_tiny_encoder_model(root / "base", [r.fields["text"] for r in rows])
    spec = TrainingSpec(
        task="text-classification",
        base=BaseModelSource("path", str(base_dir)),
        label_names=INTENT_LABELS[:3],
        epochs=3,
        batch_size=8,
        learning_rate=2e-2,
        lora_dropout=0.2,  # dropout makes the result depend on the RNG state, which resume must restore
        eval_fraction=0.2,
        max_seq_length=32,
    )
    reference = run_training(spec, rows, root / "reference", checkpoint_every_steps=1000)
    return SimpleNamespace(root=root, rows=rows, spec=spec, base_dir=base_dir, reference=reference)


def test_same_seed_and_data_give_identical_weights_whatever_the_row_order(setup, tmp_path):
    again = run_training(setup.spec, list(reversed(setup.rows)), tmp_path / "again", checkpoint_every_steps=3)
    assert_same_weights(again, setup.reference)
    assert again.model_version_id == setup.reference.model_version_id
    assert again.metrics == setup.reference.metrics


def test_another_seed_gives_other_weights_and_order(setup, tmp_path):
    spec = TrainingSpec.from_dict({**setup.spec.to_dict(), "seed": 1})
    other = run_training(spec, setup.rows, tmp_path / "other")
    assert other.model_version_id != setup.reference.model_version_id
    assert other.epoch_row_ids != setup.reference.epoch_row_ids


def test_recorded_row_order_is_the_order_the_model_saw(setup, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(setup.base_dir)
    row_of_ids = {
        tuple(ids): r.row_id
        for r, ids in zip(
            setup.rows, tokenizer([r.fields["text"] for r in setup.rows])["input_ids"], strict=True
        )
    }
    seen_batches = []

    def record_training_batches(module, args):
        # Word embeddings receive each batch's token ids; padding (id 0) is stripped to find the row.
        if (
            isinstance(module, torch.nn.Embedding)
            and module.training
            and module.num_embeddings == len(tokenizer)
        ):
            seen_batches.append([row_of_ids[tuple(x for x in ids if x != 0)] for ids in args[0].tolist()])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record_training_batches)
    try:
        result = run_training(setup.spec, setup.rows, tmp_path / "observed")
    finally:
        handle.remove()
    seen = [row_id for batch in seen_batches for row_id in batch]
    recorded = [row_id for epoch in result.epoch_row_ids for row_id in epoch]
    assert seen == recorded
    plan = plan_data(setup.spec, setup.rows)
    assert len(seen_batches) == plan.total_steps == 3 * plan.steps_per_epoch
    assert result.epoch_row_ids[0] != result.epoch_row_ids[1]  # reshuffled every epoch
    assert result.model_version_id == setup.reference.model_version_id


def test_resume_after_cancel_matches_uninterrupted_run(setup, tmp_path):
    polls = []

    def cancel_on_seventh_poll():
        polls.append(1)
        return len(polls) == 7

    with pytest.raises(TrainingCancelled) as cancelled:
        run_training(setup.spec, setup.rows, tmp_path, should_cancel=cancel_on_seventh_poll)
    assert cancelled.value.step == 6
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "model").exists()

    resumed = run_training(setup.spec, setup.rows, tmp_path, should_cancel=cancel_on_seventh_poll)
    assert resumed.resumed_from_step == 6 and not resumed.reused
    assert_same_weights(resumed, setup.reference)
    assert resumed.model_version_id == setup.reference.model_version_id
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resume_after_crash_restarts_from_last_periodic_checkpoint(setup, tmp_path):
    def crash_at_step_7(event):
        if event.step == 7:
            raise RuntimeError("worker lost its database connection")

    with pytest.raises(TrainingFailed, match="database connection"):
        run_training(
            setup.spec,
            setup.rows,
            tmp_path,
            on_progress=crash_at_step_7,
            checkpoint_every_steps=4,
            progress_every_steps=1,
        )
    events = []
    resumed = run_training(
        setup.spec, setup.rows, tmp_path, on_progress=events.append, checkpoint_every_steps=5
    )
    assert resumed.resumed_from_step == 4
    assert events[0].message == "resuming" and events[0].step == 4
    assert_same_weights(resumed, setup.reference)
    assert resumed.model_version_id == setup.reference.model_version_id


def test_finished_work_dir_is_returned_not_retrained(setup):
    def must_not_train(event):
        raise AssertionError(f"training ran again: {event}")

    again = run_training(setup.spec, setup.rows, setup.root / "reference", on_progress=must_not_train)
    assert again.reused
    assert again.model_version_id == setup.reference.model_version_id
    assert again.metrics == setup.reference.metrics


def test_work_dir_refuses_a_different_run(setup):
    changed = TrainingSpec.from_dict({**setup.spec.to_dict(), "learning_rate": 1e-3})
    with pytest.raises(InvalidTrainingInput, match="different training run"):
        run_training(changed, setup.rows, setup.root / "reference")
    with pytest.raises(InvalidTrainingInput, match="different training run"):
        run_training(setup.spec, setup.rows[:-1], setup.root / "reference")
