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

RECEIPT_VERSION = 3  # 3: row-level share policy (credit groups, measured null, paid rows, fallback basis)
_UNDIGESTED_FIELDS = ("latency_ms",)
# Verbatim spans (verbatim.py, causal models) name each row's contributor as people see them; a name is a
# label that its owner may change, not a result, so the digest covers the contributor id beside it instead.
_UNDIGESTED_SPAN_ROW_FIELDS = ("contributor_name",)


def _rounded(value: float) -> float:
    return float(f"{value:.9g}")


def build_receipt(attribution: Attribution, index: AttributionIndex, inference_id: str | None = None) -> dict[str, Any]:
    """A JSON-serialisable receipt for one attributed inference. ``shares``/``shares_ppm`` are what pays
    (the attribution's own shares, or the fallback's when it paid nobody: ``basis`` says which)."""
    payout = attribution.payout
    return {
        "receipt_version": RECEIPT_VERSION,
        "inference_id": inference_id,
        "model_hash": index.manifest["model_hash"],
        "index_hash": index.index_hash,
        "method": {**index.method, "projection": index.projection.kind, "k": index.k,
                   "fdr": attribution.policy_fdr, "credit_groups": index.manifest["credit"]["groups"]},
        "top_rows": [
            {"row_id": r.row_id, "contributor_id": r.contributor_id, "score": _rounded(r.score)}
            for r in attribution.top_rows
        ],
        "basis": payout.basis,
        "contributor_scores": {c: _rounded(s) for c, s in attribution.shares.scores.items()},
        "shares": {c: _rounded(s) for c, s in payout.shares.items()},
        "shares_ppm": dict(payout.shares_ppm),
        "paid_rows": {c: [{"row_id": r, "credit": _rounded(v)} for r, v in rows] for c, rows in payout.rows.items()},
        "negative_influence": {c: _rounded(s) for c, s in attribution.shares.negative_influence.items()},
        "groups_discovered": attribution.shares.groups_discovered,
        "z_cut": None if attribution.shares.z_cut is None else _rounded(attribution.shares.z_cut),
        "empty_reason": attribution.shares.reason,
        "latency_ms": round(attribution.latency_ms, 3),
    }


def receipt_digest(receipt: dict[str, Any]) -> str:
    """Canonical sha256 of a receipt, excluding observational fields (``latency_ms``) and the display
    names of verbatim spans' contributors. A receipt without ``verbatim_spans`` hashes as it always did."""
    digested = {k: v for k, v in receipt.items() if k not in _UNDIGESTED_FIELDS}
    if "verbatim_spans" in digested:
        digested["verbatim_spans"] = [
            {**span, "rows": [{k: v for k, v in row.items() if k not in _UNDIGESTED_SPAN_ROW_FIELDS}
                              for row in span.get("rows", [])]}
            for span in digested["verbatim_spans"]
        ]
    return canonical_sha256(digested)
