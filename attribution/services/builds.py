"""Index builds (gpu queue): queueing one when a model version is registered (`index_build_queue`), the
job that builds it from the version's own training rows with `attribution.engine` (`index_build`, run
through `lineage.jobs`: claimed, resumed from scratch after a dead worker, failed with a reason), the
valuation report and harm holds that come with it, and re-hashing a stored index (`index_verify`).
The heavy work runs outside transactions; each state change is one transaction with its audit event.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors
from datanets import services as datanet_services
from lineage import jobs
from models_registry import selectors as model_selectors
from models_registry import services as model_services

# Torch-free engine modules only at import time: web processes import this module; the torch-heavy ones
# (build, build_pass, projection, valuation) are imported inside the functions only workers run.
from ..engine.layout import MANIFEST_NAME
from ..models import AttributionIndex, IndexState, ValuationReport
from .encoding import training_batch, training_row_ids
from .errors import BuildError, IndexCorrupt
from .loading import _evict, _index_file_names, _load_model, _make_attributable, _open_verified, _ready_index
from .verbatim import span_index_store, span_index_verify

if TYPE_CHECKING:
    from ..engine.build import TrainingBatch
    from ..engine.index import AttributionIndex as EngineIndex

PROGRESS_EVERY_S = 2.0
STORAGE_ROOT = "attribution"
BUILD_LABEL = "attribution index build"  # names the job in messages and logs (`lineage.jobs`)


def index_config(*, seed: int, k: int):
    """The platform's index configuration (lineage/settings.py ATTRIBUTION_*); benchmarks mirror it."""
    from ..engine.build import IndexConfig
    from ..engine.projection import ProjectionSpec

    return IndexConfig(
        projection=ProjectionSpec(seed=seed, k=k, kind=settings.ATTRIBUTION_PROJECTION),
        curvature=settings.ATTRIBUTION_CURVATURE, damping_ratio=settings.ATTRIBUTION_DAMPING_RATIO,
        damping_rule=settings.ATTRIBUTION_DAMPING_RULE, shard_rows=settings.ATTRIBUTION_SHARD_ROWS,
        group_size=settings.ATTRIBUTION_GROUP_SIZE, duplicate_cosine=settings.ATTRIBUTION_DUPLICATE_COSINE,
        harm_outlier_z=settings.ATTRIBUTION_MISLABEL_Z, low_value_ratio=settings.ATTRIBUTION_LOW_VALUE_RATIO,
        low_value_fdr=settings.ATTRIBUTION_LOW_VALUE_FDR, eigenbasis_rows=settings.ATTRIBUTION_EIGENBASIS_ROWS,
        eigenbasis_fraction=settings.ATTRIBUTION_EIGENBASIS_FRACTION,
        eigenbasis_candidates=settings.ATTRIBUTION_EIGENBASIS_CANDIDATES,
    )


def index_build_queue(*, model_version) -> AttributionIndex:
    """Record that the version needs an index and queue its build (gpu queue) on commit."""
    from ..tasks import index_build_task

    with transaction.atomic(durable=True):
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
        audit_record(actor=None, action=AuditAction.ATTRIBUTION_INDEX_QUEUE, target=index,
                     details={"model_version": model_version.version_hash, "created": created})
        index_build_task.delay_on_commit(model_version.pk)
    return index


def _claim_build(*, model_version_id: int) -> jobs.Claim:
    """Mark the index building (one transaction, `lineage.jobs`): a ready index is not built again; one
    left `building` by a delivery that died is started again from scratch, up to `JOB_MAX_ATTEMPTS`."""
    with transaction.atomic():
        index = AttributionIndex.objects.select_for_update().filter(model_version_id=model_version_id).first()
        if index is None:
            version = model_selectors.model_version_by_id(pk=model_version_id)
            if version is None:
                raise ObjectDoesNotExist(f"Model version {model_version_id} does not exist: there is nothing to index.")
            index = AttributionIndex.objects.create(
                model_version=version, model_version_hash=version.version_hash, k=settings.ATTRIBUTION_K,
                seed=secrets.randbits(62), storage_prefix=f"{STORAGE_ROOT}/{version.version_hash}",
            )
        return jobs.claim_job(
            AttributionIndex, index.pk, label=BUILD_LABEL, start_states=(IndexState.NONE, IndexState.FAILED),
            running_state=IndexState.BUILDING, fail=_build_job_fail, on_start=_build_start,
            action="Contact an admin to have it built again.",
        )


def _build_start(index: AttributionIndex, claim: jobs.Claim) -> None:
    index.progress, index.error, index.started_at = 0.0, "", timezone.now()
    index.save(update_fields=["progress", "error", "started_at"])
    model_services.model_version_set_attribution_status(version=index.model_version, status=IndexState.BUILDING)
    audit_record(actor=None, action=AuditAction.ATTRIBUTION_INDEX_BUILD_START, target=index,
                 details={"attempt": index.attempts, "after_crash": claim.redelivered})


def _build_job_fail(index: AttributionIndex, failure: jobs.JobFailure) -> AttributionIndex:
    return _build_fail(index=index, reason=failure.message)


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
    fallback_shares_ppm: dict
    fallback_basis: str


def index_build(*, model_version_id: int) -> AttributionIndex:
    """Build (or finish) the version's index. Idempotent: a ready index returns at once; one left
    `building` by a worker that died is rebuilt from scratch in a fresh directory. Every failure ends the
    build as failed: a `BuildError` with its reason, anything else with a generic message and an error
    id (the details are logged, never shown: the reason is on public pages)."""
    claim = _claim_build(model_version_id=model_version_id)
    if not claim.run:
        return claim.job
    index = claim.job

    def build() -> AttributionIndex:
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"lineage-index-{index.model_version_hash[:12]}-"))
        try:
            built = _build(index=index, work=work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return _build_finish(index=index, built=built, seconds=time.monotonic() - started)

    return jobs.run_job(index, build, label=BUILD_LABEL, fail=_build_job_fail)


def _build_fail(*, index: AttributionIndex, reason: str) -> AttributionIndex:
    with transaction.atomic():
        AttributionIndex.objects.filter(pk=index.pk).update(state=IndexState.FAILED, error=reason[:4000])
        model_services.model_version_set_attribution_status(version=index.model_version, status=IndexState.FAILED)
        audit_record(actor=None, action=AuditAction.ATTRIBUTION_INDEX_FAILED, target=index, details={"reason": reason[:2000]})
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
            fallback_shares_ppm=built.fallback_shares_ppm, fallback_basis=built.fallback_basis,
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
        audit_record(actor=None, action=AuditAction.ATTRIBUTION_INDEX_READY, target=index,
                     details={"index_hash": built.index_hash, "rows": built.row_count, "seconds": round(seconds, 1),
                              "flagged_mislabeled": len(flagged)})
    index.refresh_from_db()
    return index


def _hold_for_harm(*, model_version_hash: str, credit: dict) -> None:
    """Contributors whose rows the index flagged as harmful have their pending earnings held for review
    (rows are flagged one by one, so spreading harmful rows over accounts does not avoid it)."""
    from rewards.holds import earnings_hold_for_harm

    threshold = credit.get("harm_threshold") or 0.0
    ratio = settings.ATTRIBUTION_LOW_VALUE_RATIO
    for contributor, harm in credit.get("harm_by_contributor", {}).items():
        if not str(contributor).isdigit():
            continue  # rows credited to a non-user id (imported data): nobody's earnings to hold
        if harm.get("kind") == "low_value":
            reason = (f"Your {len(harm['rows'])} rows, taken together, are worth {harm['efficiency']:.0%} of as many "
                      f"typical rows on this model's held-out evaluation set (a hold starts when clearly below {ratio:.0%}): some "
                      "helped, more made it worse. A curator will review them before these earnings can be claimed.")
        else:
            reason = (f"{len(harm['rows'])} of your rows made this model worse on its held-out evaluation set "
                      "(likely mislabeled); a curator will review them before these earnings can be claimed.")
        earnings_hold_for_harm(user_id=int(contributor), model_version_hash=model_version_hash, rows=harm["rows"],
                               harm=harm["harm"], threshold=threshold if harm.get("kind") != "low_value" else ratio,
                               reason=reason)


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
    from ..engine.build import TrainingBatch
    from ..engine.build_pass import build_index
    from ..engine.valuation import index_valuation

    version = index.model_version
    model, tokenizer, content = _load_model(version)
    _make_attributable(model)
    data = content["data"]
    row_ids = training_row_ids(data)
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
            inputs = training_batch(content=content, tokenizer=tokenizer, fields=[records[i].fields for i in ids])
            # First come keeps a duplicate cluster's credit: upload order is the record id's order.
            yield TrainingBatch(inputs, ids, [str(contributors.get(i) or records[i].contributor_id) for i in ids],
                                       [clusters.get(i) for i in ids], [records[i].pk for i in ids])
            if time.monotonic() - last_report[0] > PROGRESS_EVERY_S:
                last_report[0] = time.monotonic()
                AttributionIndex.objects.filter(pk=index.pk).update(progress=round(0.9 * (start + len(ids)) / total, 3))

    eval_present = [uid for uid in eval_ids if uid in records]
    # The held-out split values every row (harmful rows earn nothing) and measures the share policy's noise null.
    eval_batches = [
        training_batch(content=content, tokenizer=tokenizer, fields=[records[i].fields for i in eval_present[s:s + batch_size]])
        for s in range(0, len(eval_present), batch_size)
    ]
    local = work / "index"
    try:
        engine_index = build_index(model, batches(), local, index_config(seed=index.seed, k=index.k),
                                          model_hash=version.version_hash, eval_inputs=eval_batches or None,
                                          gradient_buffer_bytes=max(0, settings.ATTRIBUTION_GRADIENT_BUFFER_MB) << 20)
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
        result = index_valuation(engine_index, top_n=settings.ATTRIBUTION_VALUATION_TOP_N)
        valuation = _Valuation(
            row_values_by_id={rid: float(v) for rid, v in zip(engine_index.row_ids, result.row_values.tolist())},
            contributor_values=result.contributor_values, most_helpful=result.most_helpful,
            most_harmful=result.most_harmful, likely_mislabeled=result.likely_mislabeled,
            harm_threshold=result.harm_threshold,
        )

    _store_index_files(local=local, engine_index=engine_index, prefix=index.storage_prefix)
    # Causal versions: the suffix array of the same rows, for receipts' verbatim spans (services/verbatim.py).
    spans = span_index_store(index=index, content=content, tokenizer=tokenizer, row_ids=engine_index.row_ids,
                             contributor_ids=engine_index.row_contributor_ids,
                             fields=[records[i].fields for i in engine_index.row_ids], work=work)
    return _Built(
        index_hash=engine_index.index_hash, damping=float(engine_index.method["damping"]),
        method={key: value for key, value in engine_index.method.items()} | {"projection": engine_index.projection.kind}
        | ({"verbatim": spans} if spans else {}),
        row_count=engine_index.num_rows, contributor_count=len(engine_index.contributors),
        valuation=valuation, valuation_error=valuation_error, eval_rows=len(eval_present),
        credit=_credit_summary(engine_index), **_fallback_record(engine_index),
    )


def _fallback_record(engine_index: EngineIndex) -> dict:
    """The empty-receipt fallback by user id, kept on the index record for fees that get no receipt at all.
    Rows credited to a non-user id (imported data) have nobody to pay: the settlement renormalises."""
    fallback = engine_index.fallback_shares()
    return {"fallback_shares_ppm": {str(uid): int(ppm) for uid, ppm in fallback.shares_ppm.items()
                                    if str(uid).isdigit() and ppm > 0},
            "fallback_basis": fallback.basis}


def _credit_summary(engine_index: EngineIndex) -> dict:
    """What the index decided about credit, per contributor (harm) and overall, for the index row and holds.

    Two kinds of harm open a hold: rows flagged one by one as harmful (spreading them over accounts does not
    avoid it), and a contributor whose rows together are worth less than `ATTRIBUTION_LOW_VALUE_RATIO` of
    as many typical rows on the held-out split (`credit.low_value_contributors`: lucky rows earn, the rest
    hurt)."""
    credit = engine_index.manifest["credit"]
    tables = engine_index.credit()
    harmful = set(credit["harmful_rows"])
    harm_by_contributor: dict[str, dict] = {}
    for position, (row_id, contributor) in enumerate(zip(engine_index.row_ids, engine_index.row_contributor_ids)):
        if row_id in harmful:
            entry = harm_by_contributor.setdefault(contributor, {"rows": [], "harm": 0.0, "kind": "flagged"})
            entry["rows"].append(row_id)
            entry["harm"] += -float(tables.row_values[position])
    low_value = 0
    if credit.get("valued"):
        import numpy as np

        from ..engine import credit as engine_credit

        held, efficiency = engine_credit.low_value_contributors(
            tables.row_values, tables.row_owner, len(engine_index.contributors),
            settings.ATTRIBUTION_LOW_VALUE_RATIO, tables.contributor_value_se, settings.ATTRIBUTION_LOW_VALUE_FDR,
            credit.get("value_queries", 0))
        for position in held.tolist():
            contributor = engine_index.contributors[position]
            if contributor in harm_by_contributor:
                continue  # already held for flagged rows, with those rows as the evidence
            mine = np.flatnonzero(tables.row_owner == position)
            worst = mine[np.argsort(tables.row_values[mine], kind="stable")]
            harm_by_contributor[contributor] = {
                "rows": [engine_index.row_ids[p] for p in worst.tolist()],
                "harm": -float(tables.row_values[mine].sum()), "kind": "low_value",
                "efficiency": float(efficiency[position])}
            low_value += 1
    return {key: credit[key] for key in ("groups", "gradient_duplicate_pairs", "duplicate_rows_uncredited",
                                          "null_queries", "null_source", "fallback_basis", "harm_threshold")} | {
        "harmful_rows": len(harmful), "low_value_contributors": low_value, "harm_by_contributor": harm_by_contributor}


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


def index_verify(*, model_version) -> AttributionIndex:
    """Re-hash the stored index files. A mismatch fails the index (with the reason) so nothing pays out on it."""
    index = _ready_index(model_version)
    _evict(index.model_version_hash)
    try:
        _open_verified(index)
        span_index_verify(index=index)
    except IndexCorrupt as exc:
        _build_fail(index=index, reason=str(exc))
        raise
    return index
