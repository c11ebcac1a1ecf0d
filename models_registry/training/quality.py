"""Did a fine-tune learn anything? Plain Python over a finished run's recorded figures (no torch).

A run can finish without error and still be useless: on a few dozen rows with too few optimizer steps,
a classifier learns to answer the most common label for everything, and its loss hardly moves. The
model version's page must say so, with what to do, rather than show the figures as if they were a
result. ``learning_problems`` names each sign it finds; an empty list means none was found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The training loss "barely moved" when its last value is less than this share below its first.
MIN_LOSS_DROP = 0.05
# Accuracy must beat the majority-class rate by more than rounding noise.
ACCURACY_MARGIN = 1e-9


@dataclass(frozen=True)
class MajorityBaseline:
    """Always answering the eval split's most common label: ``rate`` of ``n_examples`` right."""

    label: str
    rate: float
    n_examples: int


def majority_baseline(metrics: Mapping[str, Any], label_names: Sequence[str]) -> MajorityBaseline | None:
    """The majority-class rate of a classification eval split (rows of the confusion matrix are the true
    labels); None without a confusion matrix or eval rows."""
    confusion = metrics.get("confusion_matrix") or []
    support = [sum(row) for row in confusion]
    total = sum(support)
    if not total:
        return None
    best = max(range(len(support)), key=lambda i: (support[i], -i))
    label = label_names[best] if best < len(label_names) else str(best)
    return MajorityBaseline(label=label, rate=support[best] / total, n_examples=total)


def _single_predicted_label(metrics: Mapping[str, Any], label_names: Sequence[str]) -> str | None:
    confusion = metrics.get("confusion_matrix") or []
    if not confusion:
        return None
    predicted = [sum(row[c] for row in confusion) for c in range(len(confusion[0]))]
    used = [c for c, n in enumerate(predicted) if n]
    if len(used) != 1 or sum(predicted) < 2:
        return None
    return label_names[used[0]] if used[0] < len(label_names) else str(used[0])


def loss_barely_moved(losses: Sequence[float]) -> tuple[float, float] | None:
    """(first, last) when the training loss fell by less than ``MIN_LOSS_DROP`` of its first value (or
    rose); None when it fell by more, or when fewer than two values were recorded."""
    values = [float(x) for x in losses if x is not None]
    if len(values) < 2 or values[0] <= 0:
        return None
    first, last = values[0], values[-1]
    return (first, last) if first - last < MIN_LOSS_DROP * first else None


def learning_problems(
    *,
    task: str,
    metrics: Mapping[str, Any],
    base_metrics: Mapping[str, Any] | None = None,
    label_names: Sequence[str] = (),
    train_losses: Sequence[float] = (),
) -> list[str]:
    """Sentences naming each sign that the fine-tuned model did not learn, for its owner.

    ``train_losses``: the training loss over the run in order (per epoch, or the live curve); its first
    and last values are compared. Classification: accuracy no better than the majority-class rate on
    the eval split, or one label predicted for every eval row. Other tasks: held-out loss no lower than
    the base model's (which is measured: the base is a complete language model)."""
    problems = []
    if task == "text-classification" and metrics.get("n_examples"):
        baseline = majority_baseline(metrics, label_names)
        accuracy = float(metrics.get("accuracy", 0.0))
        only = _single_predicted_label(metrics, label_names)
        if only is not None:
            problems.append(f"It answers “{only}” for every one of the {metrics['n_examples']} held-out rows.")
        if baseline is not None and accuracy <= baseline.rate + ACCURACY_MARGIN:
            problems.append(
                f"Its accuracy on the held-out rows ({accuracy:.1%}) is no better than always answering the most "
                f"common label, “{baseline.label}” ({baseline.rate:.1%})."
            )
    elif task != "text-classification" and metrics.get("loss") is not None and (base_metrics or {}).get("loss"):
        if float(metrics["loss"]) >= float(base_metrics["loss"]):
            problems.append(
                f"Its loss on the held-out rows ({float(metrics['loss']):.3f}) is no lower than the base model's "
                f"({float(base_metrics['loss']):.3f})."
            )
    moved = loss_barely_moved(train_losses)
    if moved is not None:
        problems.append(f"Its training loss barely moved ({moved[0]:.2f} → {moved[1]:.2f}).")
    return problems


def learning_advice(*, n_rows: int, n_labels: int = 0, epochs: int | None = None) -> str:
    """What to try next when a model did not learn."""
    more_rows = (
        f"Add rows (at least a few dozen per label; it had {n_rows} for {n_labels} labels)"
        if n_labels
        else f"Add rows (it had {n_rows})"
    )
    more_epochs = f"more epochs than {epochs}" if epochs else "more epochs"
    return (
        f"{more_rows}, or train again with {more_epochs} or a higher learning rate "
        "(leave Epochs and Learning rate empty to get settings scaled to the data)."
    )
