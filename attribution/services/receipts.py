"""Receipts: attributing one inference and storing its immutable, digested receipt (`receipt_create`,
idempotent per inference id), recomputing it bit for bit (`receipt_verify`) and the canonical digest of
what was asked and answered (`query_digest`).

Receipts are the exception to "an audit row per write": one is written per inference and is itself an
immutable, digested record, so an audit event beside it would only double the writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from ..engine.canonical import canonical_sha256
from ..engine.receipt import build_receipt, receipt_digest
from ..models import AttributionReceipt
from .encoding import _encode_query
from .errors import ReceiptMismatch
from .loading import _evict, _Loaded, _loaded_for, _ready_index
from .verbatim import with_verbatim_spans


def _query_digest(input_text: str, output: str) -> str:
    return canonical_sha256({"input": input_text, "output": output})


def query_digest(input_text: str, output: str) -> str:
    """sha256 of the canonical {input, output}: what a receipt's `query_digest` holds (inference records too)."""
    return _query_digest(input_text, output)


def _receipt_for_inference(existing: AttributionReceipt, *, model_version, requester, input_text: str,
                           output: str) -> AttributionReceipt:
    """`existing` (stored under the call's inference id) if it is this call's receipt; else `ReceiptMismatch`."""
    requester_id = requester.pk if getattr(requester, "is_authenticated", False) else None
    differs = [name for name, same in (
        ("model version", existing.model_version_id == model_version.pk
         and existing.model_version_hash == model_version.version_hash),
        ("requester", existing.requester_id == requester_id),
        ("query", existing.query_digest == _query_digest(input_text, output)),
    ) if not same]
    if differs:
        raise ReceiptMismatch(f"Inference {existing.inference_id} already has a receipt for a different "
                              f"{' and '.join(differs)}; it is not this inference's receipt.")
    return existing


def _attribute(entry: _Loaded, *, input_text: str, output: str, inference_id: str | None):
    """(engine receipt payload, paid rows per contributor, latency ms) for one inference."""
    content = entry.content
    inputs = _encode_query(task=content["task"], tokenizer=entry.tokenizer, input_text=input_text, output=output,
                           label_names=content.get("label_names") or [],
                           max_len=int(content["hyperparameters"]["max_seq_length"]))
    started = time.perf_counter()
    with entry.lock:
        attribution = entry.attributor.attribute(inputs, top_k_rows=settings.ATTRIBUTION_TOP_K)[0]
    latency_ms = (time.perf_counter() - started) * 1000
    # The rows that earned each paid contributor's share, scored exactly as the payout scored them.
    contributor_rows = {c: [row for row, _ in rows] for c, rows in attribution.payout.rows.items()}
    attribution = replace(attribution, latency_ms=latency_ms)
    payload = build_receipt(attribution, entry.engine_index, inference_id=inference_id)
    return payload, contributor_rows, latency_ms


def receipt_create(*, model_version, input_text: str, output: str, inference_id: str | None = None,
                   requester=None, receipt_id: str | None = None) -> AttributionReceipt:
    """Attribute one inference (`output` = the predicted label or the generated text) and store its receipt.

    `receipt_id`: the id the platform reserved for this inference's receipt when it answered (queued
    receipts, `inference.services`); a new random one otherwise. It never picks a stored receipt: only
    `inference_id` does, under the rules below.

    Idempotent per `inference_id`: the receipt stored under it is returned only when it is this call's
    (same model version, requester and query); otherwise `ReceiptMismatch`, and the stored one is left
    as it is. Raises `IndexNotReady` (or `IndexCorrupt`) when no trustworthy index exists for the model
    version."""
    if not isinstance(input_text, str) or not input_text.strip():
        raise ValidationError({"input": "Send the input text that the model answered."})
    if inference_id:
        existing = AttributionReceipt.objects.filter(inference_id=inference_id).first()
        if existing is not None:
            return _receipt_for_inference(existing, model_version=model_version, requester=requester,
                                          input_text=input_text, output=output)
    index = _ready_index(model_version)
    entry = _loaded_for(index)
    payload, contributor_rows, latency_ms = _attribute(entry, input_text=input_text, output=output,
                                                       inference_id=inference_id)
    payload = with_verbatim_spans(payload, index=index, tokenizer=entry.tokenizer, output=output)
    try:
        # Not durable: `receipt_create_paid` and inference completion create the receipt in their transaction.
        with transaction.atomic():
            receipt = AttributionReceipt.objects.create(
                **({"receipt_id": str(receipt_id)} if receipt_id else {}),
                model_version=model_version, model_version_hash=model_version.version_hash,
                index_hash=payload["index_hash"], method=payload["method"], inference_id=inference_id or None,
                requester=requester if getattr(requester, "is_authenticated", False) else None,
                input_text=input_text, output=output, query_digest=_query_digest(input_text, output),
                top_rows=payload["top_rows"], contributor_scores=payload["contributor_scores"],
                contributor_shares_ppm=payload["shares_ppm"], contributor_rows=contributor_rows,
                negative_influence=payload["negative_influence"], empty_reason=payload["empty_reason"] or "",
                payload=payload, receipt_digest=receipt_digest(payload), latency_ms=round(latency_ms, 3),
            )
    except IntegrityError:
        existing = AttributionReceipt.objects.filter(inference_id=inference_id).first() if inference_id else None
        if existing is None:
            raise
        # A concurrent request for the same inference id stored its receipt first: ours only if it is the same.
        return _receipt_for_inference(existing, model_version=model_version, requester=requester,
                                      input_text=input_text, output=output)
    return receipt


@dataclass(frozen=True)
class ReceiptCheck:
    ok: bool
    stored_digest: str
    recomputed_digest: str
    problems: tuple[str, ...]


def receipt_verify(*, receipt: AttributionReceipt) -> ReceiptCheck:
    """Recompute the receipt from the index (verified file by file first) and compare digests bit for bit."""
    problems = []
    if receipt_digest(receipt.payload) != receipt.receipt_digest:
        problems.append("the stored receipt does not match its own digest")
    if _query_digest(receipt.input_text, receipt.output) != receipt.query_digest:
        problems.append("the stored input or output does not match the query digest")
    index = _ready_index(receipt.model_version)
    if index.index_hash != receipt.index_hash:
        problems.append(f"the receipt was computed on index {receipt.index_hash[:12]}, the current one is "
                        f"{index.index_hash[:12]}")
        return ReceiptCheck(False, receipt.receipt_digest, "", tuple(problems))
    _evict(index.model_version_hash)  # full file verification, not the cached stamp check
    entry = _loaded_for(index)
    payload, _, _ = _attribute(entry, input_text=receipt.input_text, output=receipt.output,
                               inference_id=receipt.inference_id)
    payload = with_verbatim_spans(payload, index=index, tokenizer=entry.tokenizer, output=receipt.output, reverify=True)
    recomputed = receipt_digest(payload)
    if recomputed != receipt.receipt_digest:
        problems.append("recomputing the attribution gives a different receipt")
    return ReceiptCheck(not problems, receipt.receipt_digest, recomputed, tuple(problems))


class ProbeUnpaid(Exception):
    """The requester's credit does not cover the model's price: no attribution was computed for them."""

    def __init__(self, message: str, *, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = needed, available


def receipt_create_paid(*, model_version, input_text: str, output: str, requester) -> AttributionReceipt:
    """An attribution asked for directly (`POST /api/v1/attributions/`) costs what an answer of the model
    costs, and its fee is split by the receipt it buys, like any answer's: the rows it names are paid for
    being named. Free probes would let anyone find, at no cost and from as many accounts as they like,
    which rows earn on which inputs, and then upload rewordings of exactly those (docs/rewards.md).

    The receipt and the fee are one transaction: when the credit is short (`ProbeUnpaid`) neither is
    stored, so nothing of the attribution is revealed. A model priced at 0 costs nothing to probe."""
    from rewards import services as rewards_services

    fee = int(model_version.price_per_inference or 0)
    with transaction.atomic(durable=True):
        receipt = receipt_create(model_version=model_version, input_text=input_text, output=output,
                                 requester=requester)
        if fee <= 0:
            return receipt
        try:
            rewards_services.fee_record(
                inference_id=f"attribution-probe:{receipt.receipt_id}", payer=requester,
                model_owner=model_version.owner, fee=fee,
                contributor_shares={int(k): int(v) for k, v in (receipt.contributor_shares_ppm or {}).items()},
                model_version_hash=model_version.version_hash, receipt_id=str(receipt.receipt_id),
                contributor_rows={int(k): v for k, v in (receipt.contributor_rows or {}).items()})
        except rewards_services.InsufficientCredit as exc:
            raise ProbeUnpaid(str(exc), needed=exc.needed, available=exc.available) from exc
    return receipt
