"""Held-out evaluation: classification quality or causal-LM loss/perplexity.

The same functions score the fine-tuned model and the base model (adapter disabled), so the
comparison on a model version's page is like for like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from .encoding import IGNORE_INDEX, EncodedExample, pad_batch

EVAL_BATCH_SIZE = 64


def _batches(examples: Sequence[EncodedExample], pad_token_id: int, device: torch.device):
    for start in range(0, len(examples), EVAL_BATCH_SIZE):
        batch = pad_batch(examples[start : start + EVAL_BATCH_SIZE], pad_token_id)
        yield {k: v.to(device) for k, v in batch.items()}


def classification_metrics(
    true_ids: Sequence[int], predicted_ids: Sequence[int], n_labels: int
) -> dict[str, Any]:
    """Accuracy, macro-F1 over the classes present in truth or predictions, confusion[true][predicted]."""
    confusion = [[0] * n_labels for _ in range(n_labels)]
    for t, p in zip(true_ids, predicted_ids, strict=True):
        confusion[t][p] += 1
    f1_scores = []
    for c in range(n_labels):
        true_positive = confusion[c][c]
        support = sum(confusion[c])
        predicted = sum(row[c] for row in confusion)
        if support == 0 and predicted == 0:
            continue
        f1_scores.append(2 * true_positive / (support + predicted))
    correct = sum(confusion[c][c] for c in range(n_labels))
    return {
        "accuracy": correct / len(true_ids),
        "macro_f1": sum(f1_scores) / len(f1_scores),
        "confusion_matrix": confusion,
        "n_examples": len(true_ids),
    }


@torch.inference_mode()
def evaluate_classification(
    model: PreTrainedModel, examples: Sequence[EncodedExample], pad_token_id: int, n_labels: int
) -> dict[str, Any]:
    if not examples:
        return {}
    model.eval()
    device = next(model.parameters()).device
    loss_sum, predicted = 0.0, []
    for batch in _batches(examples, pad_token_id, device):
        out = model(**batch)
        loss_sum += out.loss.item() * batch["labels"].shape[0]
        predicted += out.logits.argmax(dim=-1).tolist()
    metrics = classification_metrics([e.labels for e in examples], predicted, n_labels)
    metrics["loss"] = loss_sum / len(examples)
    return metrics


@torch.inference_mode()
def evaluate_causal(
    model: PreTrainedModel, examples: Sequence[EncodedExample], pad_token_id: int
) -> dict[str, Any]:
    """Token-weighted mean loss over the label tokens (responses only for instructions) and its exp."""
    if not examples:
        return {}
    model.eval()
    device = next(model.parameters()).device
    loss_sum, n_tokens = 0.0, 0
    for batch in _batches(examples, pad_token_id, device):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # Shift so position t predicts token t+1, exactly as the models' own loss does.
        targets = batch["labels"][:, 1:]
        loss_sum += torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(),
            targets.flatten(),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        ).item()
        n_tokens += int((targets != IGNORE_INDEX).sum())
    loss = loss_sum / max(n_tokens, 1)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "n_examples": len(examples),
        "n_tokens": n_tokens,
    }
