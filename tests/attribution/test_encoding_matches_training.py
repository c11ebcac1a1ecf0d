"""The attribution index sees exactly what training saw. For each task a tiny model is trained by the real
runner, whose step batches and eval examples are recorded; the same rows are then encoded the way an index
build encodes them (`attribution.services.encoding.training_batch`: the trained model's saved tokenizer and
the task, labels and sequence length its manifest records). Input ids, labels and attention masks must be
byte-identical."""

import pytest
import torch

import models_registry.training.runner as runner
from attribution.services.encoding import training_batch, training_row_ids
from models_registry.training import (
    BaseModelSource,
    TrainingRow,
    TrainingSpec,
    build_tiny_causal_model,
    build_tiny_encoder_model,
    format_instruction_prompt,
    load_trained,
    pad_batch,
    plan_data,
    read_manifest,
    run_training,
)
from models_registry.training.synthetic import (
    INTENT_LABELS,
    synthetic_instruction_rows,
    synthetic_intent_rows,
)

LABELS = INTENT_LABELS[:3]


def plain_text_rows(n: int) -> list[TrainingRow]:
    return [TrainingRow(row_id=f"row-{i:05d}", contributor_id=f"c{i % 3}", fields={"text": row.fields["prompt"]
                                                                                    + " means " + row.fields["response"]})
            for i, row in enumerate(synthetic_instruction_rows(n, seed=5))]


def build_base(task: str, rows, out):
    if task == "text-classification":
        return build_tiny_encoder_model(out, [r.fields["text"] for r in rows])
    corpus = [r.fields["text"] if task == "text" else
              format_instruction_prompt(r.fields["prompt"], r.fields.get("context")) + r.fields["response"]
              for r in rows]
    return build_tiny_causal_model(out, corpus, vocab_size=300, arch="llama")


def assert_identical(index_batch: dict, trained_batch: dict, where: str) -> None:
    assert sorted(index_batch) == sorted(trained_batch), where
    for key, seen in trained_batch.items():
        got = index_batch[key]
        assert (got.dtype, tuple(got.shape)) == (seen.dtype, tuple(seen.shape)), f"{where}: {key}"
        assert got.numpy().tobytes() == seen.numpy().tobytes(), f"{where}: {key} differs"


@pytest.mark.parametrize(
    "task,rows",
    [
        ("text-classification", synthetic_intent_rows(24, seed=4, labels=LABELS)),
        ("instruction", synthetic_instruction_rows(24, seed=4)),  # every fourth row has a context
        ("text", plain_text_rows(24)),
    ],
)
def test_index_batches_are_byte_identical_to_training_batches(task, rows, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    spec = TrainingSpec(task=task, base=BaseModelSource("path", str(build_base(task, rows, tmp_path / "base"))),
                        label_names=LABELS if task == "text-classification" else (), batch_size=4, epochs=2,
                        max_seq_length=12, eval_fraction=0.25)  # short: truncation is exercised too
    step_batches, eval_examples = [], []

    def recording_pad_batch(examples, pad_token_id):
        batch = pad_batch(examples, pad_token_id)
        step_batches.append(batch)
        return batch

    def recording_evaluation(real):
        def evaluate(model, examples, *args):
            eval_examples.append(list(examples))
            return real(model, examples, *args)
        return evaluate

    monkeypatch.setattr(runner, "pad_batch", recording_pad_batch)
    monkeypatch.setattr(runner, "evaluate_classification", recording_evaluation(runner.evaluate_classification))
    monkeypatch.setattr(runner, "evaluate_causal", recording_evaluation(runner.evaluate_causal))
    result = run_training(spec, rows, tmp_path / "work")
    monkeypatch.undo()

    plan = plan_data(spec, rows)
    assert len(step_batches) == plan.total_steps > 0 and eval_examples
    content = read_manifest(result.model_dir)["content"]
    tokenizer = load_trained(result.model_dir).tokenizer  # what the index build loads
    by_id = {row.row_id: dict(row.fields) for row in rows}

    for step, trained in enumerate(step_batches):
        ids = [plan.train_rows[i].row_id for i in plan.batch_indices(step)]
        assert_identical(training_batch(content=content, tokenizer=tokenizer, fields=[by_id[i] for i in ids]),
                         trained, f"{task} step {step}")

    eval_ids = list(content["data"]["eval_row_ids"])
    assert eval_ids == [row.row_id for row in plan.eval_rows]
    assert_identical(training_batch(content=content, tokenizer=tokenizer, fields=[by_id[i] for i in eval_ids]),
                     pad_batch(eval_examples[0], tokenizer.pad_token_id), f"{task} eval split")
    # The index covers every row training used, in the last epoch's order.
    trained_ids = {plan.train_rows[i].row_id for step in range(plan.total_steps) for i in plan.batch_indices(step)}
    assert set(training_row_ids(content["data"])) == trained_ids
