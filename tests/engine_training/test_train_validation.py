"""Bad inputs fail early with clear messages; the data plan and metrics behave as documented."""

import dataclasses

import pytest
import torch
from sklearn.metrics import f1_score

from models_registry.training import (
    BaseModelSource,
    InvalidTrainingInput,
    TrainingFailed,
    TrainingRow,
    TrainingSpec,
    build_tiny_encoder_model,
    classification_metrics,
    encode_classification,
    load_tokenizer,
    plan_data,
    run_training,
)
from models_registry.training.synthetic import (
    INTENT_LABELS,
    synthetic_instruction_rows,
    synthetic_intent_rows,
)

torch.set_num_threads(1)
BASE = BaseModelSource("path", "/nonexistent/model")
LABELS = INTENT_LABELS[:3]


def classification_spec(**overrides):
    return dataclasses.replace(
        TrainingSpec(task="text-classification", base=BASE, label_names=LABELS, batch_size=4), **overrides
    )


def test_empty_training_set(tmp_path):
    with pytest.raises(InvalidTrainingInput, match="training set is empty"):
        run_training(classification_spec(), [], tmp_path)


def test_single_class_training_set(tmp_path):
    rows = [TrainingRow(f"r{i}", "c", {"text": f"text {i}", "label": "weather"}) for i in range(10)]
    with pytest.raises(InvalidTrainingInput, match="single label 'weather'"):
        run_training(classification_spec(), rows, tmp_path)


def test_labels_outside_the_label_set(tmp_path):
    rows = synthetic_intent_rows(12, labels=LABELS) + [
        TrainingRow("odd", "c", {"text": "hi", "label": "greeting"})
    ]
    with pytest.raises(InvalidTrainingInput, match="outside the label set.*'greeting'"):
        run_training(classification_spec(), rows, tmp_path)


def test_rows_missing_fields_duplicates_and_blank_contributors(tmp_path):
    rows = synthetic_intent_rows(6, labels=LABELS)
    with pytest.raises(InvalidTrainingInput, match="rows without them: 'bad'"):
        run_training(classification_spec(), rows + [TrainingRow("bad", "c", {"text": "no label"})], tmp_path)
    with pytest.raises(InvalidTrainingInput, match="duplicate row ids: 'row-00000'"):
        run_training(classification_spec(), rows + rows[:1], tmp_path)
    with pytest.raises(InvalidTrainingInput, match="contributor_id"):
        run_training(
            classification_spec(), [*rows, TrainingRow("x", "", {"text": "a", "label": "weather"})], tmp_path
        )
    with pytest.raises(InvalidTrainingInput, match="empty prompt/response"):
        run_training(
            TrainingSpec(task="instruction", base=BASE),
            [TrainingRow("x", "c", {"prompt": "q", "response": " "})],
            tmp_path,
        )


def test_instruction_context_must_be_text(tmp_path):
    rows = [
        TrainingRow("x", "c", {"prompt": "q", "response": "a", "context": 3}),
        *synthetic_instruction_rows(4),
    ]
    with pytest.raises(InvalidTrainingInput, match="context must be a string.*'x'"):
        run_training(TrainingSpec(task="instruction", base=BASE), rows, tmp_path)


def test_eval_split_leaving_nothing_to_train_on(tmp_path):
    rows = synthetic_instruction_rows(2)
    with pytest.raises(InvalidTrainingInput, match="leaving nothing to train on"):
        run_training(TrainingSpec(task="instruction", base=BASE, eval_fraction=0.6), rows, tmp_path)
    assert not (tmp_path / "run.json").exists()  # a rejected job does not claim the work_dir


def test_bad_hyper_parameters_are_all_reported(tmp_path):
    spec = classification_spec(
        learning_rate=-1.0,
        epochs=0,
        batch_size=2.5,
        lora_r=0,
        lora_dropout=1.0,
        eval_fraction=1.0,
        max_seq_length=4,
        max_steps=0,
        device="tpu",
        lora_target_modules=(),
    )
    with pytest.raises(InvalidTrainingInput) as error:
        run_training(spec, synthetic_intent_rows(12, labels=LABELS), tmp_path)
    for name in (
        "learning_rate",
        "epochs",
        "batch_size",
        "lora_r",
        "lora_dropout",
        "eval_fraction",
        "max_seq_length",
        "max_steps",
        "device",
        "lora_target_modules",
    ):
        assert name in error.value.reason
    with pytest.raises(InvalidTrainingInput, match="at least 2 label_names"):
        classification_spec(label_names=("only",)).validate()
    with pytest.raises(InvalidTrainingInput, match="only apply to text-classification"):
        TrainingSpec(task="instruction", base=BASE, label_names=("a", "b")).validate()
    with pytest.raises(InvalidTrainingInput, match="task must be one of"):
        TrainingSpec(task="summarise", base=BASE).validate()
    with pytest.raises(InvalidTrainingInput, match="learning_rate must be a finite number"):
        classification_spec(learning_rate=float("nan")).validate()


def test_unavailable_base_model_fails_with_reason(tmp_path):
    with pytest.raises(TrainingFailed, match="base model unavailable.*no config.json"):
        run_training(classification_spec(), synthetic_intent_rows(12, labels=LABELS), tmp_path)


def test_target_modules_that_do_not_exist_fail_clearly(tmp_path):
    rows = synthetic_intent_rows(24, labels=LABELS)
    base = build_tiny_encoder_model(tmp_path / "base", [r.fields["text"] for r in rows])
    spec = classification_spec(base=BaseModelSource("path", str(base)), lora_target_modules=("q_proj",))
    with pytest.raises(InvalidTrainingInput, match=r"target modules \['q_proj'\] do not fit"):
        run_training(spec, rows, tmp_path / "work")


def test_split_is_stratified_deterministic_and_order_independent():
    rows = synthetic_intent_rows(60, labels=LABELS)
    spec = classification_spec(eval_fraction=0.2, epochs=2)
    plan = plan_data(spec, rows)
    assert plan == plan_data(spec, list(reversed(rows)))
    eval_labels = [r.fields["label"] for r in plan.eval_rows]
    assert sorted(eval_labels) == sorted(LABELS * 4)
    assert {r.row_id for r in plan.train_rows}.isdisjoint(r.row_id for r in plan.eval_rows)
    assert [sorted(order) for order in plan.epoch_orders] == [list(range(48))] * 2
    assert plan.epoch_orders[0] != plan.epoch_orders[1]
    assert plan.steps_per_epoch == 12 and plan.total_steps == 24
    assert plan_data(dataclasses.replace(spec, max_steps=5), rows).total_steps == 5
    other_seed = plan_data(dataclasses.replace(spec, seed=9), rows)
    assert other_seed.eval_rows != plan.eval_rows


def test_classification_split_keeps_a_training_row_for_every_label():
    rows = [
        TrainingRow("a", "c", {"text": "x", "label": LABELS[0]}),
        TrainingRow("b", "c", {"text": "y", "label": LABELS[1]}),
    ]
    plan = plan_data(classification_spec(eval_fraction=0.9), rows)
    assert len(plan.train_rows) == 2 and not plan.eval_rows


def test_classification_metrics_match_sklearn():
    truth = [0, 0, 1, 1, 2, 2, 2, 0]
    predicted = [0, 1, 1, 1, 2, 0, 2, 0]
    metrics = classification_metrics(truth, predicted, n_labels=4)  # label 3 never occurs: excluded from F1
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["confusion_matrix"][2] == [1, 0, 2, 0]


def test_encode_classification_pads_dynamically(tmp_path):
    texts = ["play jazz", "what is the weather in paris tomorrow"]
    base = build_tiny_encoder_model(tmp_path / "base", texts)
    tokenizer = load_tokenizer(base)
    batch = encode_classification(tokenizer, texts, [1, 0], max_len=64)
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert batch["input_ids"].shape == (2, max(lengths))  # longest in batch, not max_len
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["labels"].tolist() == [1, 0]
    assert encode_classification(tokenizer, texts, None, max_len=4)["input_ids"].shape == (2, 4)
