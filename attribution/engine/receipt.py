"""Attribution receipts: the JSON record that justifies one inference's fee split.

A receipt names the exact model and index (their hashes), the method, and the numbers. Its digest
is the sha256 of the canonical JSON of everything except ``latency_ms``: wall time is an
observation, not a result, and excluding it lets anyone holding the index recompute the receipt
and get the same digest bit for bit. Floats are rounded to 9 significant digits (beyond float32
precision) so last-bit differences between BLAS thread schedules cannot change the digest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .canonical import canonical_sha256

if TYPE_CHECKING:
    from .index import AttributionIndex
    from .query import Attribution

RECEIPT_VERSION = 2  # 2: per-contributor floors (the chance floor) in "floors"
_UNDIGESTED_FIELDS = ("latency_ms",)


def _rounded(value: float) -> float:
    return float(f"{value:.9g}")


def build_receipt(attribution: Attribution, index: AttributionIndex, inference_id: str | None = None) -> dict[str, Any]:
    """A JSON-serialisable receipt for one attributed inference."""
    shares = attribution.shares
    return {
        "receipt_version": RECEIPT_VERSION,
        "inference_id": inference_id,
        "model_hash": index.manifest["model_hash"],
        "index_hash": index.index_hash,
        "method": {**index.method, "projection": index.projection.kind, "k": index.k},
        "top_rows": [
            {"row_id": r.row_id, "contributor_id": r.contributor_id, "score": _rounded(r.score)}
            for r in attribution.top_rows
        ],
        "contributor_scores": {c: _rounded(s) for c, s in shares.scores.items()},
        "shares": {c: _rounded(s) for c, s in shares.shares.items()},
        "shares_ppm": dict(shares.shares_ppm),
        "negative_influence": {c: _rounded(s) for c, s in shares.negative_influence.items()},
        "noise_floor": _rounded(shares.noise_floor),
        "floors": {c: _rounded(s) for c, s in shares.floors.items()},
        "effective_cap": _rounded(shares.effective_cap),
        "empty_reason": shares.reason,
        "latency_ms": round(attribution.latency_ms, 3),
    }


def receipt_digest(receipt: dict[str, Any]) -> str:
    """Canonical sha256 of a receipt, excluding observational fields (``latency_ms``)."""
    return canonical_sha256({k: v for k, v in receipt.items() if k not in _UNDIGESTED_FIELDS})
