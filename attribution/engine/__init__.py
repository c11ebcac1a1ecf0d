"""Proof-of-Attribution engine: plain Python + PyTorch, no Django.

Flow: ``build_index`` (per-example LoRA gradients → seeded block projection → damped curvature →
fp16 Ψ shards + contributor matrix + hashed manifest) → ``Attributor.attribute`` per inference (query
gradient → top rows, contributor scores, shares) → ``build_receipt`` / ``receipt_digest``.
``value_training_data`` values rows and flags likely-mislabeled ones; ``ExactInfluence`` is the
full-parameter yardstick for small models. ``build_span_index`` / ``SpanIndex.find_spans`` find where a causal
answer repeats a training row verbatim (suffix array; numpy, no torch). Module docstrings explain each rule.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .build import IndexBuilder, IndexConfig, TrainingBatch
    from .build_pass import build_index
    from .canonical import canonical_json, canonical_sha256
    from .exact import ExactInfluence
    from .gradients import GradientBlock, GradientFeaturizer, per_example_loss, trainable_linear_layers
    from .index import AttributionIndex, RowScore, TopRows, VerificationReport, merge_top_rows
    from .projection import BlockProjector, ProjectionSpec, allocate_block_dims
    from .query import Attribution, Attributor, with_predicted_labels
    from .receipt import build_receipt, receipt_digest
    from .scan import compiled_kernel_failure, scan_scores
    from .shares import (
        PPM,
        ContributorShares,
        ScoreMap,
        SharePolicy,
        account_shares,
        largest_remainder_ppm,
    )
    from .valuation import DataValuation, index_valuation, mean_query_features, value_training_data
    from .verbatim import SpanIndex, VerbatimSpan, build_span_index

# Re-exports resolve on first use (PEP 562), so importing the package, or a torch-free module of it,
# does not load torch and transformers: web processes import services that name these, and only the
# workers that train, attribute or serve pay for the libraries.
_EXPORTS: dict[str, tuple[str, str]] = {
    "Attribution": ("query", "Attribution"),
    "AttributionIndex": ("index", "AttributionIndex"),
    "Attributor": ("query", "Attributor"),
    "BlockProjector": ("projection", "BlockProjector"),
    "ContributorShares": ("shares", "ContributorShares"),
    "DataValuation": ("valuation", "DataValuation"),
    "ExactInfluence": ("exact", "ExactInfluence"),
    "GradientBlock": ("gradients", "GradientBlock"),
    "GradientFeaturizer": ("gradients", "GradientFeaturizer"),
    "IndexBuilder": ("build", "IndexBuilder"),
    "IndexConfig": ("build", "IndexConfig"),
    "PPM": ("shares", "PPM"),
    "ProjectionSpec": ("projection", "ProjectionSpec"),
    "RowScore": ("index", "RowScore"),
    "ScoreMap": ("shares", "ScoreMap"),
    "SpanIndex": ("verbatim", "SpanIndex"),
    "SharePolicy": ("shares", "SharePolicy"),
    "TopRows": ("index", "TopRows"),
    "TrainingBatch": ("build", "TrainingBatch"),
    "VerificationReport": ("index", "VerificationReport"),
    "VerbatimSpan": ("verbatim", "VerbatimSpan"),
    "allocate_block_dims": ("projection", "allocate_block_dims"),
    "build_index": ("build_pass", "build_index"),
    "build_receipt": ("receipt", "build_receipt"),
    "build_span_index": ("verbatim", "build_span_index"),
    "canonical_json": ("canonical", "canonical_json"),
    "canonical_sha256": ("canonical", "canonical_sha256"),
    "account_shares": ("shares", "account_shares"),
    "compiled_kernel_failure": ("scan", "compiled_kernel_failure"),
    "largest_remainder_ppm": ("shares", "largest_remainder_ppm"),
    "index_valuation": ("valuation", "index_valuation"),
    "mean_query_features": ("valuation", "mean_query_features"),
    "merge_top_rows": ("index", "merge_top_rows"),
    "per_example_loss": ("gradients", "per_example_loss"),
    "receipt_digest": ("receipt", "receipt_digest"),
    "scan_scores": ("scan", "scan_scores"),
    "trainable_linear_layers": ("gradients", "trainable_linear_layers"),
    "value_training_data": ("valuation", "value_training_data"),
    "with_predicted_labels": ("query", "with_predicted_labels"),
}


def __getattr__(name: str):
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

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
    "SpanIndex",
    "TopRows",
    "TrainingBatch",
    "VerbatimSpan",
    "VerificationReport",
    "allocate_block_dims",
    "build_index",
    "build_receipt",
    "build_span_index",
    "canonical_json",
    "canonical_sha256",
    "compiled_kernel_failure",
    "account_shares",
    "largest_remainder_ppm",
    "index_valuation",
    "mean_query_features",
    "merge_top_rows",
    "per_example_loss",
    "receipt_digest",
    "scan_scores",
    "trainable_linear_layers",
    "value_training_data",
    "with_predicted_labels",
]
