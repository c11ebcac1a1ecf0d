"""Writes for OpenLoRA serving: run one inference end to end and record it.

Per request (`inference_begin` → answer → `inference_complete` / `inference_fail`):

1. an `InferenceRecord` is written (status `running`); its uuid is the inference id;
2. the model slug must name a deployed model version (404 `model_not_found` / `model_not_deployed`);
3. the payer's credit must cover the model's `price_per_inference` (429 `insufficient_quota`, OpenAI's
   short-credit answer; the message names the deposit page);
4. the model server answers (errors come back OpenAI-shaped; a failed answer is never charged);
5. the attribution receipt is created (`attribution.services.receipt_create`), then the fee is settled
   with the receipt's contributor shares (`rewards.services.fee_settle`, idempotent per inference id).
   By default (`INFERENCE_RECEIPTS_ASYNC`, on) both are queued on commit to the `attribution` queue, whose
   worker owns the model and the index, so a web worker never loads torch: the answer carries at once the
   receipt id reserved for this inference (stored on its record), the worker stores the receipt under that
   id. `INFERENCE_RECEIPTS_ASYNC=0` computes them in the request (development, when chosen explicitly).
   The record keeps the digest of what was asked and answered (`query_digest`); a receipt whose model
   version, requester or query digest differs from the record's is not this inference's (one stored
   under its id beforehand, say): it is logged and the fee is settled as if there were no receipt.

A model version whose attribution index is not built yet (free models may be deployed before it is)
answers without a receipt (`receipt_id` null).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts import selectors as accounts_selectors
from accounts.models import ApiKey
from models_registry import selectors as registry_selectors

from . import integrations, metrics
from .errors import OpenAIError, insufficient_quota
from .models import InferenceRecord, InferenceStatus

logger = logging.getLogger("inference")

CLASSIFICATION_TASKS = {"text-classification"}


def is_classifier(version) -> bool:
    return version.task in CLASSIFICATION_TASKS


def adapter_name(version) -> str:
    """The adapter's name on the model server (serve_models loads each deployed version under it)."""
    return version.slug


@dataclass
class Inference:
    """One request in flight: its record, the model version and what it will cost."""

    record: InferenceRecord
    version: object
    fee: int
    started: float = field(default_factory=time.perf_counter)

    @property
    def inference_id(self) -> str:
        return str(self.record.pk)


@dataclass(frozen=True)
class Settled:
    """What the answer carries in its `lineage` extension."""

    inference_id: str
    receipt_id: str | None
    receipt_url: str | None
    fee: int
    model_version_hash: str
    receipt_status: str  # "ready", "queued" or "unavailable"
    contributors: list[dict] = field(default_factory=list)
    top_rows: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "inference_id": self.inference_id, "receipt_id": self.receipt_id, "receipt_url": self.receipt_url,
            "fee": str(self.fee), "model_version_hash": self.model_version_hash,
            "receipt_status": self.receipt_status, "contributors": self.contributors, "top_rows": self.top_rows,
        }


def _model_resolve(*, slug: str, user):
    version = registry_selectors.deployed_model_versions().filter(slug=slug).first()
    if version is not None:
        return version
    # Undeployed versions are private to their owner: only the owner learns that it exists.
    if registry_selectors.model_versions_visible_to(user=user).filter(slug=slug).exists():
        raise OpenAIError(f"The model '{slug}' is not deployed; deploy it on its model page before calling it.",
                          status=404, param="model", code="model_not_deployed")
    raise OpenAIError(f"The model '{slug}' does not exist or is not deployed. GET /v1/models lists the deployed "
                      "models.", status=404, param="model", code="model_not_found")


def inference_begin(*, user, api_key, endpoint: str, model: str, stream: bool = False, task: str | None = None,
                    resolve=None) -> Inference:
    """Record the request, then check the model and the payer's credit (raises `OpenAIError`). `resolve(slug=,
    user=)`: what answers under `model` when it is not a model version (a retrieval app: `retrieval.chat`)."""
    record = InferenceRecord.objects.create(
        user=user, api_key=api_key if isinstance(api_key, ApiKey) else None, endpoint=endpoint,
        model_slug=str(model)[:100], stream=stream,
    )
    inference = Inference(record=record, version=None, fee=0)
    try:
        version = (resolve or _model_resolve)(slug=model, user=user)
        inference.version = version
        record.model_version_hash, record.adapter = version.version_hash, adapter_name(version)
        record.save(update_fields=["model_version_hash", "adapter"])
        if task == "classification" and not is_classifier(version):
            raise OpenAIError(f"The model '{model}' generates text; use /v1/chat/completions or /v1/completions.",
                              status=400, param="model", code="model_not_classifier")
        inference.fee = int(version.price_per_inference)
        if inference.fee > 0:
            balance = integrations.credit_balance(user=user)
            if balance < inference.fee:
                raise insufficient_quota(
                    f"Insufficient credit: one answer from '{model}' costs {integrations.format_open(inference.fee)} "
                    f"OPEN and your credit is {integrations.format_open(balance)} OPEN. Add credit at "
                    f"{integrations.deposit_page_url()} (deposit OPEN from your linked wallet), or ask an admin "
                    "for a grant.")
    except OpenAIError as exc:
        inference_fail(inference=inference, error=exc)
        raise
    return inference


def inference_fail(*, inference: Inference, error: OpenAIError, status: str = InferenceStatus.FAILED) -> None:
    """Finish a request that produced no (paid) answer: nothing is charged."""
    record = inference.record
    record.status, record.error_code, record.error = status, error.code or error.type, error.message[:4000]
    record.latency_ms = (time.perf_counter() - inference.started) * 1e3
    record.fee, record.finished_at = 0, timezone.now()
    record.save(update_fields=["status", "error_code", "error", "latency_ms", "fee", "finished_at"])
    metrics.observe(record)


def inference_complete(*, inference: Inference, input_text: str, output: str, tokens_in: int, tokens_out: int,
                       slot: int | None) -> Settled:
    """Receipt, fee and record for an answer that was produced. Raises `OpenAIError` (429) if the credit
    ran out between the check and the settlement: the answer is then refused and nothing is charged."""
    record, version = inference.record, inference.version
    record.tokens_in, record.tokens_out, record.adapter_slot = tokens_in, tokens_out, slot
    record.latency_ms = (time.perf_counter() - inference.started) * 1e3
    record.query_digest = integrations.query_digest(input_text, output)
    if settings.INFERENCE_RECEIPTS_ASYNC:
        return _complete_queued(inference=inference, input_text=input_text, output=output)
    receipt = _receipt(inference=inference, input_text=input_text, output=output)
    try:
        with transaction.atomic(durable=True):
            if inference.fee > 0:
                integrations.fee_settle(inference_id=inference.inference_id, payer=record.user,
                                        model_version=version, fee=inference.fee, receipt=receipt,
                                        query_digest=record.query_digest)
            record.fee = inference.fee
            record.receipt_id = receipt.receipt_id if receipt else ""
            record.status, record.finished_at = InferenceStatus.SUCCEEDED, timezone.now()
            record.save()
    except integrations.CreditShort as exc:
        error = insufficient_quota(str(exc))
        inference_fail(inference=inference, error=error)
        raise error from exc
    metrics.observe(record)
    return _settled(inference, receipt)


def inference_complete_settled(*, inference: Inference, input_text: str, output: str, tokens_in: int,
                               tokens_out: int, settle) -> Settled:
    """Record an answer whose receipt and fee its caller makes: `settle(inference)` runs in this transaction and
    returns the `Settled` (a retrieval app's answer, `retrieval.services.answers`). Raises `OpenAIError` (429)
    when `settle` finds the credit short (`integrations.CreditShort`): nothing is charged."""
    record = inference.record
    record.tokens_in, record.tokens_out = tokens_in, tokens_out
    record.latency_ms = (time.perf_counter() - inference.started) * 1e3
    record.query_digest = integrations.query_digest(input_text, output)
    try:
        with transaction.atomic(durable=True):
            settled = settle(inference)
            record.fee, record.receipt_id = settled.fee, settled.receipt_id or ""
            record.status, record.finished_at = InferenceStatus.SUCCEEDED, timezone.now()
            record.save()
    except integrations.CreditShort as exc:
        error = insufficient_quota(str(exc))
        inference_fail(inference=inference, error=error)
        raise error from exc
    metrics.observe(record)
    return settled


def _complete_queued(*, inference: Inference, input_text: str, output: str) -> Settled:
    """Record the answer and queue its receipt and fee (`inference_settle_task`, on commit, `attribution`
    queue). When the model's index is ready, a receipt id is reserved for this inference now: it is stored on
    the record, the answer carries it, and the worker stores the receipt under it (nothing else can take it:
    only the platform names receipt ids, and a receipt already under the inference id that is not this
    inference's own is refused there, the fee then settled without it)."""
    from .tasks import inference_settle_task

    record, version = inference.record, inference.version
    reserved = integrations.receipt_id_reserve() if integrations.receipt_possible(model_version=version) else ""
    try:
        with transaction.atomic():
            # The fee is held now, at the price the answer was given at: only its split waits for the
            # receipt. Holding it in the worker instead would let one payer's concurrent answers outrun
            # their credit (the extra answers then free) and charge a price changed in between.
            if inference.fee > 0:
                integrations.fee_hold(inference_id=inference.inference_id, payer=record.user, model_version=version,
                                      fee=inference.fee)
            record.status, record.receipt_id, record.fee = InferenceStatus.SUCCEEDED, reserved, inference.fee
            record.save(update_fields=["tokens_in", "tokens_out", "adapter_slot", "latency_ms", "query_digest",
                                       "status", "receipt_id", "fee"])
            inference_settle_task.delay_on_commit(str(record.pk), input_text, output)
    except integrations.CreditShort as exc:
        error = insufficient_quota(str(exc))
        inference_fail(inference=inference, error=error)
        raise error from exc
    metrics.observe(record)
    return Settled(inference_id=inference.inference_id, receipt_id=reserved or None,
                   receipt_url=integrations.receipt_url(reserved) if reserved else None, fee=inference.fee,
                   model_version_hash=version.version_hash, receipt_status="queued" if reserved else "unavailable")


def _expected_digest(record: InferenceRecord, input_text: str, output: str) -> str:
    # Records queued before `query_digest` existed carry none: the queued input and output stand in.
    return record.query_digest or integrations.query_digest(input_text, output)


def _receipt(*, inference: Inference, input_text: str, output: str, receipt_id: str | None = None):
    """The inference's receipt, or None: none could be made, or the one under its id is not its own.
    `receipt_id`: the id reserved when a queued answer was given."""
    record = inference.record
    try:
        receipt = integrations.receipt_create(model_version=inference.version, input_text=input_text, output=output,
                                              inference_id=inference.inference_id, requester=record.user,
                                              receipt_id=receipt_id or None)
    except integrations.ReceiptMismatch as exc:
        logger.warning("receipt refused for inference %s, fee settled without one: %s", inference.inference_id, exc)
        return None
    except integrations.ReceiptUnavailable as exc:
        logger.info("no receipt for inference %s: %s", inference.inference_id, exc)
        return None
    except Exception:  # noqa: BLE001 - an attribution failure must not lose the answer
        logger.exception("receipt creation failed for inference %s", inference.inference_id)
        return None
    differs = integrations.receipt_mismatches(receipt, model_version_hash=record.model_version_hash,
                                              requester_id=record.user_id,
                                              query_digest=_expected_digest(record, input_text, output))
    if differs:
        logger.warning("receipt %s is not inference %s's (different %s): fee settled without it",
                       receipt.receipt_id, inference.inference_id, ", ".join(differs))
        return None
    return receipt


def _settled(inference: Inference, receipt) -> Settled:
    contributors = []
    if receipt is not None:
        names = accounts_selectors.users_public_names(user_ids=list(receipt.shares_ppm))
        contributors = [
            {"user_id": uid, "name": names.get(int(uid)) or f"user {uid}", "share_ppm": ppm,
             "rows": receipt.rows.get(str(uid), [])[:10]}
            for uid, ppm in sorted(receipt.shares_ppm.items(), key=lambda item: -item[1])
        ]
    return Settled(
        inference_id=inference.inference_id, receipt_id=receipt.receipt_id if receipt else None,
        receipt_url=receipt.url if receipt else None, fee=inference.fee,
        model_version_hash=inference.version.version_hash, receipt_status="ready" if receipt else "unavailable",
        contributors=contributors, top_rows=receipt.top_rows[:10] if receipt else [],
    )


def inference_settle_queued(*, inference_id: str, input_text: str, output: str) -> InferenceRecord:
    """The queued half of an answer under `INFERENCE_RECEIPTS_ASYNC` (the `attribution` queue's worker):
    receipt, stored under the id reserved on the record, then fee. Idempotent."""
    record = InferenceRecord.objects.select_related("user").get(pk=inference_id)
    if record.finished_at is not None:
        return record
    version = registry_selectors.model_version_by_hash(version_hash=record.model_version_hash)
    # The fee the answer was given at (held then); records queued before fees were held carry none yet.
    fee = int(record.fee) if record.fee else int(version.price_per_inference)
    inference = Inference(record=record, version=version, fee=fee)
    if record.query_digest and integrations.query_digest(input_text, output) != record.query_digest:
        # Not what was answered: no receipt is made of it (least of all under the id the answer carried).
        logger.warning("queued settlement of inference %s names another input or output than was answered: fee "
                       "settled without a receipt", inference_id)
        receipt = None
    else:
        receipt = _receipt(inference=inference, input_text=input_text, output=output, receipt_id=record.receipt_id)
    try:
        with transaction.atomic(durable=True):
            digest = _expected_digest(record, input_text, output)
            if fee > 0 and not integrations.fee_attach(inference_id=inference_id, payer=record.user,
                                                       model_version=version, receipt=receipt, query_digest=digest):
                integrations.fee_settle(inference_id=inference_id, payer=record.user, model_version=version, fee=fee,
                                        receipt=receipt, query_digest=digest)
            record.fee, record.receipt_id = fee, receipt.receipt_id if receipt else ""
            record.finished_at = timezone.now()
            record.save(update_fields=["fee", "receipt_id", "finished_at"])
    except integrations.CreditShort as exc:
        record.error_code, record.error, record.finished_at = "insufficient_quota", str(exc), timezone.now()
        record.save(update_fields=["error_code", "error", "finished_at"])
    return record


def receipt_url_absolute(path: str | None, request=None) -> str | None:
    if not path:
        return None
    return request.build_absolute_uri(path) if request is not None else path


def playground_url() -> str:
    return reverse("inference:playground")
