"""What to train (``TrainingSpec``), on which rows (``TrainingRow``), and the deterministic data plan.

Everything about which row is used when is a pure function of the seed and the row ids: the
train/eval split and every epoch's order are ranked by SHA-256 of ``seed | purpose | row_id``. The
plan therefore does not depend on the order the caller passes rows in, survives a process restart
(resume needs the same batches), and can be recomputed by anyone auditing a model version.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import InvalidTrainingInput
from .sources import DTYPES, BaseModelSource

TaskName = Literal["text-classification", "instruction", "text"]
TASKS: tuple[str, ...] = ("text-classification", "instruction", "text")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

# Row fields each task reads; anything else in ``fields`` is carried but ignored.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "text-classification": ("text", "label"),
    "instruction": ("prompt", "response"),
    "text": ("text",),
}


@dataclass(frozen=True)
class TrainingRow:
    """One dataset row: ``fields`` holds ``text``/``label``, or ``prompt``/``context``/``response``."""

    row_id: str
    contributor_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class TrainingSpec:
    """A fine-tuning job's hyper-parameters. The defaults suit a few thousand rows on a small encoder;
    ``recipe_for_rows`` scales epochs, learning rate and batch size to smaller and larger data.

    ``max_steps`` caps the optimizer steps (training stops inside the epochs; the recorded epoch
    orders then end at the last row used). ``warmup_fraction`` of the total steps warm the learning
    rate up linearly from 0, after which it decays linearly to 0. ``base_dtype`` "bfloat16" is for
    large bases on GPUs; adapters always train in float32.
    """

    task: TaskName
    base: BaseModelSource
    label_names: tuple[str, ...] = ()
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] | None = None
    learning_rate: float = 5e-4
    epochs: int = 3
    batch_size: int = 16
    max_seq_length: int = 128
    eval_fraction: float = 0.1
    seed: int = 0
    max_steps: int | None = None
    warmup_fraction: float = 0.06
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    base_dtype: str = "float32"
    device: str = "auto"

    def validate(self) -> None:
        """Raise ``InvalidTrainingInput`` listing every problem with the hyper-parameters."""
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.base, BaseModelSource):
            problems.append("base must be a BaseModelSource")
        if self.task == "text-classification":
            if len(self.label_names) < 2:
                problems.append("text-classification needs at least 2 label_names")
            if len(set(self.label_names)) != len(self.label_names):
                problems.append("label_names contain duplicates")
            if any(not isinstance(n, str) or not n for n in self.label_names):
                problems.append("label_names must be non-empty strings")
        elif self.label_names:
            problems.append(f"label_names only apply to text-classification, not {self.task!r}")
        problems += _check_int(self, "lora_r", minimum=1)
        problems += _check_int(self, "epochs", minimum=1)
        problems += _check_int(self, "batch_size", minimum=1)
        problems += _check_int(self, "max_seq_length", minimum=8)
        problems += _check_int(self, "seed", minimum=0)
        if self.max_steps is not None:
            problems += _check_int(self, "max_steps", minimum=1)
        problems += _check_range(self, "lora_alpha", low=0.0, low_open=True)
        problems += _check_range(self, "learning_rate", low=0.0, low_open=True, high=1.0)
        problems += _check_range(self, "lora_dropout", low=0.0, high=1.0, high_open=True)
        problems += _check_range(self, "eval_fraction", low=0.0, high=1.0, high_open=True)
        problems += _check_range(self, "warmup_fraction", low=0.0, high=1.0)
        problems += _check_range(self, "weight_decay", low=0.0)
        if self.max_grad_norm is not None:
            problems += _check_range(self, "max_grad_norm", low=0.0, low_open=True)
        if self.lora_target_modules is not None and (
            not self.lora_target_modules
            or not all(isinstance(m, str) and m for m in self.lora_target_modules)
        ):
            problems.append("lora_target_modules must be None (architecture default) or non-empty names")
        if self.base_dtype not in DTYPES:
            problems.append(f"base_dtype must be one of {DTYPES}, got {self.base_dtype!r}")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {DEVICES}, got {self.device!r}")
        if problems:
            raise InvalidTrainingInput("invalid training spec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["label_names"] = list(self.label_names)
        if self.lora_target_modules is not None:
            data["lora_target_modules"] = list(self.lora_target_modules)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSpec:
        values = dict(data)
        values["base"] = BaseModelSource(**values["base"])
        values["label_names"] = tuple(values.get("label_names", ()))
        if values.get("lora_target_modules") is not None:
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        return cls(**values)


# The default recipe, scaled to the data (``recipe_for_rows``): a LoRA adapter and a fresh classifier
# head need on the order of a hundred optimizer steps to move; three epochs of a 50-row Datanet in
# batches of 16 are 9 steps, and the model learns to predict one class.
RECIPE_MIN_STEPS = 100
RECIPE_MIN_EPOCHS = 3
RECIPE_MAX_EPOCHS = 30
RECIPE_SMALL_ROWS = 1_000  # below this: batches of 8 and a learning rate of 2e-3
RECIPE_LARGE_ROWS = 10_000  # from this on: 5e-4 (1e-3 in between)


def recipe_for_rows(n_rows: int, eval_fraction: float = 0.1) -> dict[str, Any]:
    """Batch size, learning rate and epochs for ``n_rows`` rows (before the eval split).

    - batch size 8 below 1,000 rows, else 16;
    - learning rate 2e-3 below 1,000 rows, 1e-3 below 10,000, else 5e-4 (small data needs bigger steps);
    - enough epochs for about 100 optimizer steps, at least 3 and at most 30.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 0:
        raise InvalidTrainingInput(f"n_rows must be an integer >= 0, got {n_rows!r}")
    batch_size = 8 if n_rows < RECIPE_SMALL_ROWS else 16
    learning_rate = 2e-3 if n_rows < RECIPE_SMALL_ROWS else 1e-3 if n_rows < RECIPE_LARGE_ROWS else 5e-4
    train_rows = max(1, n_rows - math.ceil(n_rows * eval_fraction))
    steps_per_epoch = math.ceil(train_rows / batch_size)
    epochs = min(RECIPE_MAX_EPOCHS, max(RECIPE_MIN_EPOCHS, math.ceil(RECIPE_MIN_STEPS / steps_per_epoch)))
    return {"batch_size": batch_size, "learning_rate": learning_rate, "epochs": epochs}


def _check_int(spec: TrainingSpec, name: str, minimum: int) -> list[str]:
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return [f"{name} must be an integer >= {minimum}, got {value!r}"]
    return []


def _check_range(
    spec: TrainingSpec,
    name: str,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> list[str]:
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return [f"{name} must be a finite number, got {value!r}"]
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return [f"{name} must be in {left}{low}, {high}{right}, got {value!r}"]
    return []


@dataclass(frozen=True)
class DataPlan:
    """The deterministic split and per-epoch orders, as indices into ``train_rows``."""

    train_rows: tuple[TrainingRow, ...]
    eval_rows: tuple[TrainingRow, ...]
    epoch_orders: tuple[tuple[int, ...], ...]
    steps_per_epoch: int
    total_steps: int
    batch_size: int

    def batch_indices(self, step: int) -> tuple[int, ...]:
        """Train-row indices of optimizer step ``step`` (0-based, global across epochs)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        return self.epoch_orders[epoch][position * self.batch_size : (position + 1) * self.batch_size]

    def epoch_of(self, step: int) -> int:
        """0-based epoch of the 0-based optimizer step ``step``."""
        return step // self.steps_per_epoch

    @property
    def total_epochs(self) -> int:
        """Epochs the run reaches (fewer than ``spec.epochs`` when ``max_steps`` stops it early)."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def used_row_ids_per_epoch(self, steps_done: int) -> list[list[str]]:
        """Row ids in the order they were trained on, per epoch, for the first ``steps_done`` steps."""
        used: list[list[str]] = []
        for epoch, order in enumerate(self.epoch_orders):
            first_step = epoch * self.steps_per_epoch
            if first_step >= steps_done:
                break
            rows_used = min(steps_done - first_step, self.steps_per_epoch) * self.batch_size
            used.append([self.train_rows[i].row_id for i in order[:rows_used]])
        return used


def _rank(seed: int, purpose: str, row_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x1f{purpose}\x1f{row_id}".encode()).digest()


def validate_rows(spec: TrainingSpec, rows: Sequence[TrainingRow]) -> None:
    """Raise ``InvalidTrainingInput`` for an unusable training set (message names offending rows)."""
    if not rows:
        raise InvalidTrainingInput("the training set is empty: add rows before training")
    ids = [r.row_id for r in rows]
    if any(not isinstance(i, str) or not i for i in ids):
        raise InvalidTrainingInput("every row needs a non-empty string row_id")
    if any(not isinstance(r.contributor_id, str) or not r.contributor_id for r in rows):
        raise InvalidTrainingInput(
            "every row needs a non-empty string contributor_id (attribution pays them)"
        )
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise InvalidTrainingInput(f"duplicate row ids: {_some(duplicates)}")
    required = REQUIRED_FIELDS[spec.task]
    missing = [r.row_id for r in rows if any(not isinstance(r.fields.get(f), str) for f in required)]
    if missing:
        raise InvalidTrainingInput(
            f"{spec.task} rows need string fields {required}; rows without them: {_some(missing)}"
        )
    bad_context = [
        r.row_id
        for r in rows
        if r.fields.get("context") is not None and not isinstance(r.fields["context"], str)
    ]
    if spec.task == "instruction" and bad_context:
        raise InvalidTrainingInput(f"context must be a string when given; rows: {_some(bad_context)}")
    text_fields = [f for f in required if f != "label"]
    empty = [r.row_id for r in rows if any(not r.fields[f].strip() for f in text_fields)]
    if empty:
        raise InvalidTrainingInput(f"rows with empty {'/'.join(text_fields)}: {_some(empty)}")
    try:
        for r in rows:
            json.dumps(dict(r.fields), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidTrainingInput(f"row {r.row_id!r} has fields that are not plain JSON: {exc}") from exc
    if spec.task == "text-classification":
        unknown = sorted({r.fields["label"] for r in rows} - set(spec.label_names))
        if unknown:
            raise InvalidTrainingInput(
                f"labels outside the label set {list(spec.label_names)}: {_some(unknown)}"
            )
        present = {r.fields["label"] for r in rows}
        if len(present) < 2:
            raise InvalidTrainingInput(
                f"all rows have the single label {next(iter(present))!r}: classification needs 2 or more classes"
            )


def _some(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def plan_data(spec: TrainingSpec, rows: Sequence[TrainingRow]) -> DataPlan:
    """Split rows into train/eval and fix every epoch's order (see the module docstring).

    Classification splits per label (stratified) and keeps at least one training row per label;
    other tasks put ``ceil(n * eval_fraction)`` rows in eval and refuse a split with no train rows.
    """
    if spec.task == "text-classification":
        groups: dict[str, list[TrainingRow]] = {}
        for row in rows:
            groups.setdefault(row.fields["label"], []).append(row)
        eval_rows: list[TrainingRow] = []
        for label in sorted(groups):
            ranked = sorted(groups[label], key=lambda r: _rank(spec.seed, "split", r.row_id))
            n_eval = min(math.floor(len(ranked) * spec.eval_fraction + 0.5), len(ranked) - 1)
            eval_rows += ranked[:n_eval]
    else:
        ranked = sorted(rows, key=lambda r: _rank(spec.seed, "split", r.row_id))
        n_eval = math.ceil(len(ranked) * spec.eval_fraction)
        if n_eval >= len(ranked):
            raise InvalidTrainingInput(
                f"eval_fraction={spec.eval_fraction} puts all {len(ranked)} rows in the eval split, "
                "leaving nothing to train on: lower eval_fraction or add rows"
            )
        eval_rows = ranked[:n_eval]
    eval_ids = {r.row_id for r in eval_rows}
    train_rows = tuple(sorted((r for r in rows if r.row_id not in eval_ids), key=lambda r: r.row_id))
    eval_rows_sorted = tuple(sorted(eval_rows, key=lambda r: r.row_id))
    epoch_orders = tuple(
        tuple(
            sorted(range(len(train_rows)), key=lambda i: _rank(spec.seed, f"epoch-{e}", train_rows[i].row_id))
        )
        for e in range(spec.epochs)
    )
    steps_per_epoch = math.ceil(len(train_rows) / spec.batch_size)
    total = steps_per_epoch * spec.epochs
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)
    return DataPlan(train_rows, eval_rows_sorted, epoch_orders, steps_per_epoch, total, spec.batch_size)


def run_fingerprint(
    spec: TrainingSpec, rows: Sequence[TrainingRow], dataset_versions: Mapping[str, str]
) -> str:
    """Identity of a run's inputs: a work_dir only resumes (or reuses) a run with the same fingerprint."""
    payload = {
        "spec": spec.to_dict(),
        "rows": [[r.row_id, r.contributor_id, dict(r.fields)] for r in sorted(rows, key=lambda r: r.row_id)],
        "dataset_versions": dict(dataset_versions),
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Key-sorted, compact, UTF-8 JSON: the byte form every hash in this engine is taken over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
