"""Data valuation: how much each training row and contributor helps an evaluation set.

``value(row) = mean over eval examples e of score(e, row)`` = minus the row's influence on the mean
eval loss (positive: training on the row lowered eval loss). Because scores are linear in the query
gradient, this is one scan with the mean projected eval gradient, not one per eval example.

"Likely mislabeled": a wrong label pushes the model against the validation data, so such rows have
a high validation-harm score (``harm = -value``). A row is flagged when its harm is positive and
more than ``outlier_z`` robust standard deviations (1.4826 × MAD) above the median harm. On MiniLM
LoRA with 10% flipped labels this score found flips with AUC 0.90-0.97 (see
``bench/attribution_lora.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from .index import RowScore
from .query import Attributor

_MAD_TO_STD = 1.4826


@dataclass(frozen=True)
class DataValuation:
    row_values: torch.Tensor  # [n] in index row order
    contributor_values: dict[str, float]
    most_helpful: list[RowScore]
    most_harmful: list[RowScore]  # score = harm (positive = harmful)
    likely_mislabeled: list[RowScore]  # score = harm, most harmful first
    harm_threshold: float


def mean_query_features(attributor: Attributor, eval_batches: Iterable[Mapping[str, torch.Tensor]]) -> torch.Tensor:
    """Mean projected gradient ``[1, k]`` of the eval loss (labels = the eval set's true labels)."""
    total, count = None, 0
    for inputs in eval_batches:
        features = attributor.query_features(inputs).double()
        total = features.sum(0) if total is None else total + features.sum(0)
        count += features.shape[0]
    if not count:
        raise ValueError("evaluation set is empty")
    return (total / count).float().unsqueeze(0)


def value_training_data(
    attributor: Attributor,
    eval_batches: Iterable[Mapping[str, torch.Tensor]],
    top_n: int = 20,
    outlier_z: float = 3.0,
) -> DataValuation:
    index = attributor.index
    eval_query = mean_query_features(attributor, eval_batches)
    values = index.all_scores(eval_query)[0]
    contributor_values = index.contributor_scores(eval_query)[0]
    harm = -values
    median = harm.median()
    threshold = max(0.0, float(median + outlier_z * _MAD_TO_STD * (harm - median).abs().median()))
    order = torch.argsort(values, descending=True, stable=True)
    flagged = [int(p) for p in order.flip(0) if harm[p] > threshold]
    return DataValuation(
        row_values=values,
        contributor_values={c: float(v) for c, v in zip(index.contributors, contributor_values)},
        most_helpful=[index.row_score(int(p), float(values[p])) for p in order[:top_n]],
        most_harmful=[index.row_score(int(p), float(harm[p])) for p in order.flip(0)[:top_n]],
        likely_mislabeled=[index.row_score(p, float(harm[p])) for p in flagged],
        harm_threshold=threshold,
    )
