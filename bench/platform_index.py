"""The platform's attribution index configuration, and its row scores, for the quality benchmarks.

``PLATFORM_INDEX`` mirrors the defaults in lineage/settings.py (ATTRIBUTION_PROJECTION, _CURVATURE,
_DAMPING_RATIO, _DAMPING_RULE, _GROUP_SIZE, _DUPLICATE_COSINE, _MISLABEL_Z, _LOW_VALUE_RATIO, _LOW_VALUE_FDR); tests/attribution checks
that ``platform_config`` equals the IndexConfig the platform builds, so benchmarks measure it.

The index has one damping: the stored Ψ rows are exactly the rows a receipt ranks and the rows the
contributor matrix sums. So one set of row scores answers both the row question (LOO)
and the set question (LDS over random subsets, a contributor's total); ``platform_scores`` checks
that the contributor matrix really is the sum of those row scores before returning them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from attribution.engine.build import IndexConfig, TrainingBatch
from attribution.engine.build_pass import build_index
from attribution.engine.projection import ProjectionSpec
from attribution.engine.query import Attributor

PLATFORM_INDEX = {"kind": "eigenbasis", "eigenbasis_rows": 4096, "eigenbasis_fraction": 0.9,
                  "eigenbasis_candidates": 4.0, "curvature": "fisher",
                  "damping_ratio": 0.01, "damping_rule": "weighted_mean_eigenvalue", "group_size": 16, "duplicate_cosine": 0.99,
                  "harm_outlier_z": 3.0, "min_groups": 8, "low_value_ratio": 0.5, "low_value_fdr": 0.05}


def lds(scores: np.ndarray, masks: np.ndarray, subset_losses: np.ndarray) -> float:
    """Linear datamodeling score: per query, Spearman between the predicted loss of each subset (minus
    the sum of its rows' scores) and the loss actually measured after retraining on it; averaged."""
    predicted = -(masks.astype(np.float64) @ scores.T)  # [subsets, Q]: higher score sum ⇒ lower loss
    return float(np.nanmean([spearmanr(predicted[:, q], subset_losses[:, q]).statistic
                             for q in range(scores.shape[0])]))


def platform_config(seed: int, k: int = 1024, **overrides) -> IndexConfig:
    """The platform's IndexConfig at projection dimension ``k``; ``overrides`` replace PLATFORM_INDEX entries
    (tests/attribution checks that this equals ``attribution.services.index_config``)."""
    options = {**PLATFORM_INDEX, **overrides}
    kind = options.pop("kind")
    return IndexConfig(ProjectionSpec(seed=seed, k=k, kind=kind), **options)


@dataclass(frozen=True)
class PlatformScores:
    rows: np.ndarray  # [queries, rows] the stored Ψ scores: receipts rank them, payouts sum them
    contributor_agreement: float  # max relative gap between the contributor matrix and the summed row scores


def platform_scores(model: torch.nn.Module, batches: Sequence[TrainingBatch], directory: Path, config: IndexConfig,
                    queries: Mapping[str, torch.Tensor], model_hash: str,
                    eval_inputs: Iterable[Mapping[str, torch.Tensor]] | None = None) -> PlatformScores:
    kwargs = {} if eval_inputs is None else {"eval_inputs": eval_inputs}
    index = build_index(model, batches, directory / "index", config, model_hash=model_hash, **kwargs)
    features = Attributor(model, index).query_features(queries)
    rows = index.all_scores(features).double().numpy()
    owners = np.array(index.row_contributor_ids)
    # Contributor scores are the plain sums of the row scores (credit weights act on payouts only).
    summed = np.stack([rows[:, owners == c].sum(1) for c in index.contributors], axis=1)
    matrix = index.contributor_scores(features).double().numpy()
    agreement = float(np.abs(matrix - summed).max() / np.abs(summed).max())
    if agreement > 5e-3:  # fp16 storage of both; anything larger means payouts sum something else
        raise SystemExit(f"contributor matrix differs from the summed row scores by {agreement:.2e}")
    return PlatformScores(rows, agreement)
