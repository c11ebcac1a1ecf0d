"""Writes for Proof of Attribution: index builds (gpu queue), receipts and their verification.

The computation is the engine's (`attribution.engine`); these functions feed it the model version's
own training rows, encoded exactly as training encoded them, and turn its results into rows. The
heavy work runs outside transactions; each state change is one transaction with its audit event.

Receipts are the exception to "an audit row per write": one is written per inference and is itself
an immutable, digested record, so an audit event beside it would only double the writes.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import audit_record
from datanets import selectors as datanet_selectors
from datanets import services as datanet_services
from models_registry import services as model_services

# Torch-free engine modules only; the rest (``engine.build_index``, ``engine.Attributor``...) is
# resolved on first use, in the worker or serving process that builds or queries an index.
from . import engine
from .engine.canonical import canonical_sha256
from .engine.layout import MANIFEST_NAME
from .engine.receipt import build_receipt, receipt_digest
from .engine.shares import SharePolicy

if TYPE_CHECKING:
    from .engine.build import TrainingBatch
    from .engine.index import AttributionIndex as EngineIndex
    from .engine.query import Attributor
from .models import AttributionIndex, AttributionReceipt, IndexState, ValuationReport

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0
STORAGE_ROOT = "attribution"


class IndexNotReady(Exception):
    """The model version's index is not built (or not usable): no receipt can be computed."""


class IndexCorrupt(IndexNotReady):
    """The stored index files no longer match the hash recorded when it was built."""


class ReceiptMismatch(Exception):
    """A receipt is already stored under this inference id for another model version, requester or query:
    it is not this inference's receipt, and it is neither returned nor overwritten."""


class BuildError(Exception):
    """A reason an index cannot be built that a person can act on."""


# --- Encoding the model version's rows exactly as training did ----------------------------------------

def _training_row_ids(data: dict) -> list[str]:
    """The last epoch's order, then any row only earlier epochs used (a run cut short by max_steps)."""
    epochs = data.get("epoch_row_ids") or []
    ordered = list(epochs[-1]) if epochs else list(data.get("train_row_ids", []))
    seen = set(ordered)
    for epoch in epochs[:-1]:
        for row_id in epoch:
            if row_id not in seen:
                seen.add(row_id)
                ordered.append(row_id)
    return ordered


def _encode_rows(*, task: str, tokenizer, fields: list[dict], label_names, max_len: int) -> dict:
    from models_registry.training import (
        pad_batch,
        tokenize_classification,
        tokenize_instructions,
        tokenize_texts,
    )

    if task == "text-classification":
        label_ids = {name: i for i, name in enumerate(label_names)}
        examples = tokenize_classification(tokenizer, [f["text"] for f in fields],
                                           [label_ids[f["label"]] for f in fields], max_len)
    elif task == "instruction":
        examples = tokenize_instructions(tokenizer, [f["prompt"] for f in fields], [f["response"] for f in fields],
                                         [f.get("context") for f in fields], max_len)
    else:
        examples = tokenize_texts(tokenizer, [f["text"] for f in fields], max_len)
    return pad_batch(examples, tokenizer.pad_token_id)


def _encode_query(*, task: str, tokenizer, input_text: str, output: str, label_names, max_len: int) -> dict:
    """One inference as a labelled example: its own output is the label whose gradient is scored."""
    from models_registry.training import (
        IGNORE_INDEX,
        EncodedExample,
        causal_prompt_ids,
        pad_batch,
        tokenize_classification,
        tokenize_instructions,
    )

    if task == "text-classification":
        if output not in label_names:
            raise ValidationError({"output": f"'{output}' is not one of this model's labels ({', '.join(label_names)})."})
        examples = tokenize_classification(tokenizer, [input_text], [list(label_names).index(output)], max_len)
    elif task == "instruction":
        examples = tokenize_instructions(tokenizer, [input_text], [output], None, max_len)
    else:  # plain text: the prompt conditions, the continuation is what is attributed
        prompt = causal_prompt_ids(tokenizer, input_text)
        response = tokenizer(output, add_special_tokens=False)["input_ids"]
        keep = min(len(response), max(max_len - len(prompt), max_len // 2))
        prompt = prompt[max(len(prompt) - (max_len - keep), 0):] if max_len - keep > 0 else []
        examples = [EncodedExample(tuple(prompt + response[:keep]), (IGNORE_INDEX,) * len(prompt) + tuple(response[:keep]))]
    if task != "text-classification" and not any(label != IGNORE_INDEX for label in examples[0].labels):
        raise ValidationError({"output": "The output is empty: there is nothing to attribute."})
    return pad_batch(examples, tokenizer.pad_token_id)


def _make_attributable(model):
    """A loaded peft model has every parameter frozen; attribution differentiates exactly what training
    trained (LoRA matrices and the `modules_to_save` copies), so those get requires_grad back."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name or ".modules_to_save." in name)
    return model.eval()


def _device() -> str:
    import torch

    if settings.ATTRIBUTION_DEVICE == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.ATTRIBUTION_DEVICE


def _load_model(version):
    from models_registry.training import load_trained

    try:
        loaded = load_trained(model_services.model_version_local_dir(version=version), device=_device())
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"The model version's adapter files cannot be loaded: {exc}") from exc
    return loaded.model, loaded.tokenizer, loaded.manifest["content"]


def _share_policy() -> SharePolicy:
    return SharePolicy(fdr=settings.ATTRIBUTION_FDR, top_groups=settings.ATTRIBUTION_TOP_GROUPS,
                       rows_per_contributor=settings.ATTRIBUTION_ROWS_PER_CONTRIBUTOR)


def index_config(*, seed: int, k: int):
    """The platform's index configuration (lineage/settings.py ATTRIBUTION_*); benchmarks mirror it."""
    return engine.IndexConfig(
        projection=engine.ProjectionSpec(seed=seed, k=k, kind=settings.ATTRIBUTION_PROJECTION),
        curvature=settings.ATTRIBUTION_CURVATURE, damping_ratio=settings.ATTRIBUTION_DAMPING_RATIO,
        damping_rule=settings.ATTRIBUTION_DAMPING_RULE, shard_rows=settings.ATTRIBUTION_SHARD_ROWS,
        group_size=settings.ATTRIBUTION_GROUP_SIZE, duplicate_cosine=settings.ATTRIBUTION_DUPLICATE_COSINE,
        harm_outlier_z=settings.ATTRIBUTION_MISLABEL_Z,
    )


# --- Index builds ---------------------------------------------------------------------------------------

def index_build_queue(*, model_version) -> AttributionIndex:
    """Record that the version needs an index and queue its build (gpu queue) on commit."""
    from .tasks import index_build_task

    with transaction.atomic():
        index, created = AttributionIndex.objects.select_for_update().get_or_create(
            model_version=model_version,
            defaults={
                "model_version_hash": model_version.version_hash,
                "k": settings.ATTRIBUTION_K,
                "seed": secrets.randbits(62),  # secret: only the index manifest and this row hold it
                "storage_prefix": f"{STORAGE_ROOT}/{model_version.version_hash}",
            },
        )
        if index.state == IndexState.READY:
            return index
        audit_record(actor=None, action="attribution.index_queue", target=index,
                     details={"model_version": model_version.version_hash, "created": created})
        index_build_task.delay_on_commit(model_version.pk)
    return index


def _claim_build(*, model_version_id: int) -> tuple[AttributionIndex, bool]:
    """Mark the index building (one transaction). Returns (index, should_build)."""
    from models_registry.models import ModelVersion  # the FK target; read only to create the row

    with transaction.atomic():
        index = AttributionIndex.objects.select_for_update().filter(model_version_id=model_version_id).first()
        if index is None:
            version = ModelVersion.objects.get(pk=model_version_id)
            index = AttributionIndex.objects.create(
                model_version=version, model_version_hash=version.version_hash, k=settings.ATTRIBUTION_K,
                seed=secrets.randbits(62), storage_prefix=f"{STORAGE_ROOT}/{version.version_hash}",
            )
            index = AttributionIndex.objects.select_for_update().get(pk=index.pk)
        if index.state == IndexState.READY:
            return index, False
        retry = index.state == IndexState.BUILDING  # a delivery that died mid-build: start again, from scratch
        index.state, index.progress, index.error = IndexState.BUILDING, 0.0, ""
        index.attempts += 1
        index.started_at = timezone.now()
        index.save(update_fields=["state", "progress", "error", "attempts", "started_at"])
        model_services.model_version_set_attribution_status(version=index.model_version, status=IndexState.BUILDING)
        audit_record(actor=None, action="attribution.index_build_start", target=index,
                     details={"attempt": index.attempts, "after_crash": retry})
    return index, True


@dataclass
class _Built:
    index_hash: str
    damping: float
    method: dict
    row_count: int
    contributor_count: int
    valuation: object | None
    valuation_error: str
    eval_rows: int
    credit: dict


def index_build(*, model_version_id: int) -> AttributionIndex:
    """Build (or finish) the version's index. Idempotent: a ready index returns at once; one left
    `building` by a worker that died is rebuilt from scratch in a fresh directory."""
    index, should_build = _claim_build(model_version_id=model_version_id)
    if not should_build:
        return index
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"lineage-index-{index.model_version_hash[:12]}-"))
    try:
        built = _build(index=index, work=work)
    except Exception as exc:  # noqa: BLE001 - every failure must end the build as failed, with its reason
        logger.exception("attribution index build failed for %s", index.model_version_hash)
        reason = str(exc) if isinstance(exc, BuildError) else f"{type(exc).__name__}: {exc}"
        return _build_fail(index=index, reason=reason)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _build_finish(index=index, built=built, seconds=time.monotonic() - started)


def _build_fail(*, index: AttributionIndex, reason: str) -> AttributionIndex:
    with transaction.atomic():
        AttributionIndex.objects.filter(pk=index.pk).update(state=IndexState.FAILED, error=reason[:4000])
        model_services.model_version_set_attribution_status(version=index.model_version, status=IndexState.FAILED)
        audit_record(actor=None, action="attribution.index_failed", target=index, details={"reason": reason[:2000]})
    index.refresh_from_db()
    return index


def _build_finish(*, index: AttributionIndex, built: _Built, seconds: float) -> AttributionIndex:
    valuation = built.valuation
    with transaction.atomic():
        AttributionIndex.objects.filter(pk=index.pk).update(
            state=IndexState.READY, progress=1.0, index_hash=built.index_hash, damping=built.damping,
            method=built.method | {"credit": {k: v for k, v in built.credit.items() if k != "harm_by_contributor"}},
            row_count=built.row_count, contributor_count=built.contributor_count,
            built_at=timezone.now(), build_seconds=round(seconds, 3), error="",
        )
        model_services.model_version_set_attribution_status(version=index.model_version, status=IndexState.READY)
        report_fields = {"index_hash": built.index_hash, "eval_rows": built.eval_rows, "error": built.valuation_error}
        if valuation is not None:
            report_fields.update(_valuation_fields(valuation))
        else:
            report_fields.update(row_values={}, contributor_values={}, most_helpful=[], most_harmful=[],
                                 likely_mislabeled=[], harm_threshold=None)
        ValuationReport.objects.update_or_create(model_version=index.model_version, defaults=report_fields)
        flagged = {row["row_id"]: row["score"] for row in report_fields["likely_mislabeled"]}
        if flagged:
            datanet_services.records_flag_mislabeled(scores=flagged)
        _hold_for_harm(model_version_hash=index.model_version_hash, credit=built.credit)
        audit_record(actor=None, action="attribution.index_ready", target=index,
                     details={"index_hash": built.index_hash, "rows": built.row_count, "seconds": round(seconds, 1),
                              "flagged_mislabeled": len(flagged)})
    index.refresh_from_db()
    return index


def _hold_for_harm(*, model_version_hash: str, credit: dict) -> None:
    """Contributors whose rows the index flagged as harmful have their pending earnings held for review
    (rows are flagged one by one, so spreading harmful rows over accounts does not avoid it)."""
    from rewards.holds import earnings_hold_for_harm

    threshold = credit.get("harm_threshold") or 0.0
    for contributor, harm in credit.get("harm_by_contributor", {}).items():
        if not str(contributor).isdigit():
            continue  # rows credited to a non-user id (imported data): nobody's earnings to hold
        earnings_hold_for_harm(
            user_id=int(contributor), model_version_hash=model_version_hash, rows=harm["rows"], harm=harm["harm"],
            threshold=threshold,
            reason=(f"{len(harm['rows'])} of your rows made this model worse on its held-out evaluation set "
                    "(likely mislabeled); a curator will review them before these earnings can be claimed."))


def _row_json(row) -> dict:
    return {"row_id": row.row_id, "contributor_id": row.contributor_id, "score": float(row.score)}


@dataclass(frozen=True)
class _Valuation:
    """The engine's DataValuation plus row values keyed by row id (JSON-ready)."""

    row_values_by_id: dict
    contributor_values: dict
    most_helpful: list
    most_harmful: list
    likely_mislabeled: list
    harm_threshold: float


def _valuation_fields(valuation: _Valuation) -> dict:
    return {
        "row_values": valuation.row_values_by_id,
        "contributor_values": {c: float(v) for c, v in valuation.contributor_values.items()},
        "most_helpful": [_row_json(r) for r in valuation.most_helpful],
        "most_harmful": [_row_json(r) for r in valuation.most_harmful],
        "likely_mislabeled": [_row_json(r) for r in valuation.likely_mislabeled],
        "harm_threshold": float(valuation.harm_threshold),
    }


def _cluster_ids(*, lineage: dict, records: dict) -> dict[str, str]:
    """Row id -> near-duplicate cluster id from the Datanet versions' manifests (meta.near_duplicate_clusters)."""
    datanets = {r.datanet.slug: r.datanet for r in records.values()}
    clusters: dict[str, str] = {}
    for entry in lineage.get("datanets", []):
        datanet = datanets.get(entry["datanet"])
        if datanet is None:
            continue
        version = datanet_selectors.version_get(datanet=datanet, number=entry["version"])
        for member, root in ((version.manifest.get("meta") or {}).get("near_duplicate_clusters") or {}).items():
            clusters[f"r{member}"] = f"r{root}"
            clusters.setdefault(f"r{root}", f"r{root}")
    return clusters


def _build(*, index: AttributionIndex, work: Path) -> _Built:
    version = index.model_version
    model, tokenizer, content = _load_model(version)
    _make_attributable(model)
    data = content["data"]
    label_names = content.get("label_names") or []
    max_len = int(content["hyperparameters"]["max_seq_length"])
    task = content["task"]
    row_ids = _training_row_ids(data)
    eval_ids = list(data.get("eval_row_ids", []))
    records = datanet_selectors.records_by_uid(uids=row_ids + eval_ids)
    missing = [uid for uid in row_ids if uid not in records]
    if missing:
        raise BuildError(f"{len(missing)} training rows no longer exist (e.g. {', '.join(missing[:5])}); "
                         "an index must cover every row the model trained on.")
    contributors = data.get("row_contributors", {})
    clusters = _cluster_ids(lineage=version.lineage, records=records)
    batch_size = settings.ATTRIBUTION_BATCH_SIZE
    total = len(row_ids)
    last_report = [time.monotonic()]

    def batches() -> Iterator[TrainingBatch]:
        for start in range(0, total, batch_size):
            ids = row_ids[start:start + batch_size]
            inputs = _encode_rows(task=task, tokenizer=tokenizer, fields=[records[i].fields for i in ids],
                                  label_names=label_names, max_len=max_len)
            # First come keeps a duplicate cluster's credit: upload order is the record id's order.
            yield engine.TrainingBatch(inputs, ids, [str(contributors.get(i) or records[i].contributor_id) for i in ids],
                                       [clusters.get(i) for i in ids], [records[i].pk for i in ids])
            if time.monotonic() - last_report[0] > PROGRESS_EVERY_S:
                last_report[0] = time.monotonic()
                AttributionIndex.objects.filter(pk=index.pk).update(progress=round(0.9 * (start + len(ids)) / total, 3))

    eval_present = [uid for uid in eval_ids if uid in records]
    # The held-out split values every row (harmful rows earn nothing) and measures the share policy's noise null.
    eval_batches = [
        _encode_rows(task=task, tokenizer=tokenizer, fields=[records[i].fields for i in eval_present[s:s + batch_size]],
                     label_names=label_names, max_len=max_len)
        for s in range(0, len(eval_present), batch_size)
    ]
    local = work / "index"
    try:
        engine_index = engine.build_index(model, batches(), local, index_config(seed=index.seed, k=index.k),
                                          model_hash=version.version_hash, eval_inputs=eval_batches or None)
    except ValueError as exc:
        raise BuildError(f"The index cannot be built from this model's gradients: {exc}") from exc
    report = engine_index.verify()
    if not report.ok:
        raise BuildError(f"The freshly built index does not verify: {'; '.join(report.problems)}")
    AttributionIndex.objects.filter(pk=index.pk).update(progress=0.92)

    valuation, valuation_error = None, ""
    if not eval_present:
        valuation_error = "This model version has no held-out eval split, so its rows cannot be valued."
    else:
        result = engine.index_valuation(engine_index, top_n=settings.ATTRIBUTION_VALUATION_TOP_N)
        valuation = _Valuation(
            row_values_by_id={rid: float(v) for rid, v in zip(engine_index.row_ids, result.row_values.tolist())},
            contributor_values=result.contributor_values, most_helpful=result.most_helpful,
            most_harmful=result.most_harmful, likely_mislabeled=result.likely_mislabeled,
            harm_threshold=result.harm_threshold,
        )

    _store_index_files(local=local, engine_index=engine_index, prefix=index.storage_prefix)
    return _Built(
        index_hash=engine_index.index_hash, damping=float(engine_index.method["damping"]),
        method={key: value for key, value in engine_index.method.items()} | {"projection": engine_index.projection.kind},
        row_count=engine_index.num_rows, contributor_count=len(engine_index.contributors),
        valuation=valuation, valuation_error=valuation_error, eval_rows=len(eval_present),
        credit=_credit_summary(engine_index),
    )


def _credit_summary(engine_index: EngineIndex) -> dict:
    """What the index decided about credit, per contributor (harm) and overall, for the index row and holds."""
    credit = engine_index.manifest["credit"]
    tables = engine_index.credit()
    harmful = set(credit["harmful_rows"])
    harm_by_contributor: dict[str, dict] = {}
    for position, (row_id, contributor) in enumerate(zip(engine_index.row_ids, engine_index.row_contributor_ids)):
        if row_id in harmful:
            entry = harm_by_contributor.setdefault(contributor, {"rows": [], "harm": 0.0})
            entry["rows"].append(row_id)
            entry["harm"] += -float(tables.row_values[position])
    return {key: credit[key] for key in ("groups", "gradient_duplicate_pairs", "duplicate_rows_uncredited",
                                          "null_queries", "null_source", "fallback_basis", "harm_threshold")} | {
        "harmful_rows": len(harmful), "harm_by_contributor": harm_by_contributor}


def _index_file_names(manifest: dict) -> list[str]:
    return [*(shard["file"] for shard in manifest["shards"]), manifest["credit_file"]["file"],
            manifest["contributors_file"]["file"]]


def _store_index_files(*, local: Path, engine_index: EngineIndex, prefix: str) -> None:
    """Shards and contributor matrix first, the manifest last, each replacing a crashed build's leftover."""
    for name in [*_index_file_names(engine_index.manifest), MANIFEST_NAME]:
        target = f"{prefix}/{name}"
        if default_storage.exists(target):
            default_storage.delete(target)
        with open(local / name, "rb") as fh:
            stored = default_storage.save(target, File(fh))
        if stored != target:
            raise BuildError(f"Storage saved {target} as {stored}; another build is writing the same index.")


# --- Loading: one model + opened index per model version, LRU per process -----------------------------

@dataclass
class _Loaded:
    index_hash: str
    model: object
    tokenizer: object
    content: dict
    engine_index: EngineIndex
    attributor: Attributor
    directory: Path
    stamps: dict
    lock: threading.Lock


_cache: OrderedDict[str, _Loaded] = OrderedDict()
_cache_lock = threading.Lock()


def _index_local_dir(index: AttributionIndex) -> Path:
    """The index directory on this machine: the storage path itself, or a verified download once."""
    try:
        return Path(default_storage.path(f"{index.storage_prefix}/{MANIFEST_NAME}")).parent
    except NotImplementedError:
        pass
    target = Path(settings.ATTRIBUTION_CACHE_DIR) / index.index_hash
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        with default_storage.open(f"{index.storage_prefix}/{MANIFEST_NAME}", "rb") as src:
            (target / MANIFEST_NAME).write_bytes(src.read())
        manifest = engine.AttributionIndex(target).manifest
        for name in _index_file_names(manifest):
            with default_storage.open(f"{index.storage_prefix}/{name}", "rb") as src, open(target / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        (target / ".complete").touch()
    return target


def _stamps(directory: Path) -> dict:
    """(size, mtime) of every file: a cheap per-receipt check that nothing changed since verification."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file()}


def _open_verified(index: AttributionIndex) -> tuple[EngineIndex, Path]:
    try:
        directory = _index_local_dir(index)
        engine_index = engine.AttributionIndex(directory, keep_in_memory=True)
        report = engine_index.verify(expected_index_hash=index.index_hash)
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"The attribution index of model {index.model_version_hash[:12]} cannot be read: {exc}") from exc
    if not report.ok:
        raise IndexCorrupt(
            f"The attribution index of model {index.model_version_hash[:12]} failed verification "
            f"({'; '.join(report.problems)}): its files differ from index {index.index_hash[:12]}. "
            "No receipt is computed from it; rebuild the index."
        )
    return engine_index, directory


def _evict(model_version_hash: str) -> None:
    with _cache_lock:
        _cache.pop(model_version_hash, None)


def _loaded_for(index: AttributionIndex) -> _Loaded:
    key = index.model_version_hash
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    if entry is not None and entry.index_hash == index.index_hash:
        try:
            unchanged = _stamps(entry.directory) == entry.stamps
        except OSError:
            unchanged = False
        if unchanged:
            return entry
        _evict(key)  # files touched since they were verified: verify again before trusting them
    engine_index, directory = _open_verified(index)
    model, tokenizer, content = _load_model(index.model_version)
    _make_attributable(model)
    attributor = engine.Attributor(model, engine_index, _share_policy())
    entry = _Loaded(index.index_hash, model, tokenizer, content, engine_index, attributor, directory,
                    _stamps(directory), threading.Lock())
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > max(1, settings.ATTRIBUTION_CACHE_MODELS):
            _cache.popitem(last=False)
    return entry


def cache_clear() -> None:
    """Forget every loaded model and index in this process (tests; after a rebuild)."""
    with _cache_lock:
        _cache.clear()


def _ready_index(model_version) -> AttributionIndex:
    index = AttributionIndex.objects.filter(model_version_id=model_version.pk).first()
    if index is None or index.state != IndexState.READY:
        state = "not queued" if index is None else index.get_state_display().lower()
        detail = f" ({index.error})" if index is not None and index.error else ""
        raise IndexNotReady(f"The attribution index of {model_version.slug} is {state}{detail}; "
                            "receipts are available once it is ready.")
    return index


# --- Receipts -------------------------------------------------------------------------------------------

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
                   requester=None) -> AttributionReceipt:
    """Attribute one inference (`output` = the predicted label or the generated text) and store its receipt.

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
    try:
        with transaction.atomic():
            receipt = AttributionReceipt.objects.create(
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
    recomputed = receipt_digest(payload)
    if recomputed != receipt.receipt_digest:
        problems.append("recomputing the attribution gives a different receipt")
    return ReceiptCheck(not problems, receipt.receipt_digest, recomputed, tuple(problems))


def index_verify(*, model_version) -> AttributionIndex:
    """Re-hash the stored index files. A mismatch fails the index (with the reason) so nothing pays out on it."""
    index = _ready_index(model_version)
    _evict(index.model_version_hash)
    try:
        _open_verified(index)
    except IndexCorrupt as exc:
        _build_fail(index=index, reason=str(exc))
        raise
    return index


def model_output(*, model_version, input_text: str) -> str:
    """The model's own answer to `input_text` (predicted label or greedy generation), from the cached model."""
    from models_registry.training import generate_text, predict_labels

    if not isinstance(input_text, str) or not input_text.strip():
        raise ValidationError({"input": "Send the input text to answer."})
    entry = _loaded_for(_ready_index(model_version))
    content = entry.content
    max_len = int(content["hyperparameters"]["max_seq_length"])
    with entry.lock:
        if content["task"] == "text-classification":
            return predict_labels(entry.model, entry.tokenizer, [input_text], max_length=max_len)[0]
        return generate_text(entry.model, entry.tokenizer, input_text, max_new_tokens=settings.ATTRIBUTION_MAX_NEW_TOKENS,
                             as_instruction=content["task"] == "instruction")
