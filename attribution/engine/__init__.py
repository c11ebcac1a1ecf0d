"""Proof-of-Attribution engine: plain Python + PyTorch, no Django.

Flow: ``build_index`` (per-example LoRA gradients → seeded block projection → damped curvature →
fp16 Ψ shards + contributor matrix + hashed manifest) → ``Attributor.attribute`` per inference (query
gradient → top rows, contributor scores, shares) → ``build_receipt`` / ``receipt_digest``.
``value_training_data`` values rows and flags likely-mislabeled ones; ``ExactInfluence`` is the
full-parameter yardstick for small models. Module docstrings explain each rule.
"""

from .canonical import canonical_json, canonical_sha256
from .exact import ExactInfluence
from .gradients import GradientBlock, GradientFeaturizer, per_example_loss, trainable_linear_layers
from .index import (
    AttributionIndex,
    IndexBuilder,
    IndexConfig,
    RowScore,
    TopRows,
    TrainingBatch,
    VerificationReport,
    build_index,
    merge_top_rows,
)
from .projection import BlockProjector, ProjectionSpec, allocate_block_dims
from .query import Attribution, Attributor, with_predicted_labels
from .receipt import build_receipt, receipt_digest
from .scan import compiled_kernel_failure, scan_scores
from .shares import (
    PPM,
    ContributorShares,
    ScoreMap,
    SharePolicy,
    capped_normalise,
    contributor_shares,
    largest_remainder_ppm,
    row_count_shares,
)
from .valuation import DataValuation, mean_query_features, value_training_data

__all__ = [
    "PPM",
    "Attribution",
    "AttributionIndex",
    "Attributor",
    "BlockProjector",
    "ContributorShares",
    "DataValuation",
    "ExactInfluence",
    "GradientBlock",
    "GradientFeaturizer",
    "IndexBuilder",
    "IndexConfig",
    "ProjectionSpec",
    "RowScore",
    "ScoreMap",
    "SharePolicy",
    "TopRows",
    "TrainingBatch",
    "VerificationReport",
    "allocate_block_dims",
    "build_index",
    "build_receipt",
    "canonical_json",
    "canonical_sha256",
    "compiled_kernel_failure",
    "capped_normalise",
    "contributor_shares",
    "largest_remainder_ppm",
    "mean_query_features",
    "merge_top_rows",
    "per_example_loss",
    "receipt_digest",
    "row_count_shares",
    "scan_scores",
    "trainable_linear_layers",
    "value_training_data",
    "with_predicted_labels",
]
