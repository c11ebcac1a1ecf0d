"""The platform's attribution index configuration, and scoring rows both ways, for the quality benchmarks.

``PLATFORM_INDEX`` mirrors the defaults in lineage/settings.py (ATTRIBUTION_PROJECTION,
ATTRIBUTION_CURVATURE, ATTRIBUTION_DAMPING_RATIO, ATTRIBUTION_CONTRIBUTOR_DAMPING_RATIO);
tests/attribution checks that they agree, so the benchmarks measure what the platform builds.

A receipt's top rows come from the stored Ψ (row damping). Payouts score a *set* of rows, a
contributor, through the contributor matrix (contributor damping). Ground truth over random subsets
(LDS) asks the set question, so it is measured on the rows the contributor matrix sums, i.e. the Ψ of
``config.for_contributor_scores()``; ``platform_scores`` checks that those rows really do sum to the
production index's contributor matrix before returning them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from attribution.engine import Attributor, IndexConfig, ProjectionSpec, TrainingBatch, build_index

PLATFORM_INDEX = {"kind": "orthogonal", "curvature": "fisher", "damping_ratio": 0.01, "contributor_damping_ratio": 0.1}


def lds(scores: np.ndarray, masks: np.ndarray, subset_losses: np.ndarray) -> float:
    """Linear datamodeling score: per query, Spearman between the predicted loss of each subset (minus
    the sum of its rows' scores) and the loss actually measured after retraining on it; averaged."""
    predicted = -(masks.astype(np.float64) @ scores.T)  # [subsets, Q]: higher score sum ⇒ lower loss
    return float(np.nanmean([spearmanr(predicted[:, q], subset_losses[:, q]).statistic
                             for q in range(scores.shape[0])]))


def platform_config(seed: int, k: int = 1024, **overrides) -> IndexConfig:
    options = {**PLATFORM_INDEX, **overrides}
    return IndexConfig(ProjectionSpec(seed=seed, k=k, kind=options["kind"]), curvature=options["curvature"],
                       damping_ratio=options["damping_ratio"],
                       contributor_damping_ratio=options["contributor_damping_ratio"])


@dataclass(frozen=True)
class PlatformScores:
    rows: np.ndarray  # [queries, rows] the receipts' row scores (stored Ψ, row damping)
    sets: np.ndarray  # [queries, rows] per-row scores at the contributor damping: sums of these score sets
    contributor_agreement: float  # max relative gap between the contributor matrix and the summed set scores


def platform_scores(model: torch.nn.Module, batches: Sequence[TrainingBatch], directory: Path, config: IndexConfig,
                    queries: Mapping[str, torch.Tensor], model_hash: str) -> PlatformScores:
    index = build_index(model, batches, directory / "index", config, model_hash=model_hash)
    set_index = build_index(model, batches, directory / "set", config.for_contributor_scores(), model_hash=model_hash)
    features = Attributor(model, index).query_features(queries)
    rows = index.all_scores(features).double().numpy()
    sets = set_index.all_scores(features).double().numpy()
    owners = np.array(index.row_contributor_ids)
    summed = np.stack([sets[:, owners == c].sum(1) for c in index.contributors], axis=1)
    matrix = index.contributor_scores(features).double().numpy()
    agreement = float(np.abs(matrix - summed).max() / np.abs(summed).max())
    if agreement > 5e-3:  # fp16 storage of both; anything larger means the benchmark measures the wrong scores
        raise SystemExit(f"contributor matrix differs from the summed set scores by {agreement:.2e}")
    return PlatformScores(rows, sets, agreement)
