"""Retrieval index builds (gpu queue): queueing one when a version of a Documents Datanet is published
(`index_build_queue`, called inside the publishing transaction), the job that builds it from the version's
own files with `retrieval.engine` (`index_build`, run through `lineage.jobs`: claimed once, started again
from scratch after a dead worker, failed with a reason), queueing a failed build again
(`index_build_requeue`, staff in the admin) and failing an index whose stored files no longer verify
(`index_fail_corrupt`). The heavy work runs outside transactions; each state change is one transaction with
its audit event."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors
from datanets import services as datanet_services
from datanets.ingest.versions import iter_version_records, verify_version
from datanets.types import TaskType
from lineage import jobs

from .. import engine
from ..engine.store import MANIFEST_NAME
from ..errors import BuildError
from ..loading import encoder_device, evict, passage_encoder
from ..models import IndexState, RetrievalIndex

STORAGE_ROOT = "retrieval"
BUILD_LABEL = "search index build"  # names the job in messages and logs (`lineage.jobs`)


def _storage_prefix(version) -> str:
    return f"{STORAGE_ROOT}/{version.datanet_id}/{version.manifest_hash}"


def index_build_queue(*, version) -> RetrievalIndex:
    """Record that the version needs a search index and queue its build (gpu queue) on commit. Idempotent:
    a version that already has its index row keeps it (and its state) and nothing is queued again."""
    from ..tasks import retrieval_index_build_task

    if version.datanet.task_type != TaskType.DOCUMENTS:
        raise ValidationError("Only versions of a Documents Datanet get a search index.")
    # Not durable: queued from the `version_published` signal, sent inside `version_publish`'s transaction.
    with transaction.atomic():
        index, created = RetrievalIndex.objects.select_for_update().get_or_create(
            version=version, defaults={"version_hash": version.manifest_hash, "storage_prefix": _storage_prefix(version)},
        )
        if not created:
            return index
        audit_record(actor=None, action=AuditAction.RETRIEVAL_INDEX_QUEUE, target=index,
                     details={"datanet": version.datanet.slug, "version": version.number, "rows": version.row_count})
        retrieval_index_build_task.delay_on_commit(version.pk)
    return index


def index_build_requeue(*, index: RetrievalIndex, actor) -> RetrievalIndex:
    """Queue a failed build again (its attempts start over). Only a failed one: a queued or building index
    already has a task, and a second would build it twice at once."""
    from ..tasks import retrieval_index_build_task

    with transaction.atomic(durable=True):
        index = RetrievalIndex.objects.select_for_update().get(pk=index.pk)
        if index.state != IndexState.FAILED:
            raise ValidationError(f"Only a failed build is queued again; this index is {index.get_state_display().lower()}.")
        previous_error = index.error
        index.state, index.error, index.attempts = IndexState.QUEUED, "", 0
        index.save(update_fields=["state", "error", "attempts"])
        audit_record(actor=actor, action=AuditAction.RETRIEVAL_INDEX_REQUEUE, target=index, details={"error": previous_error[:500]})
        retrieval_index_build_task.delay_on_commit(index.version_id)
    return index


def index_fail_corrupt(*, index: RetrievalIndex, reason: str) -> RetrievalIndex:
    """Fail a ready index whose stored files no longer verify: nothing is answered from it until it is built
    again (`index_build_requeue`)."""
    evict(index.index_hash)
    with transaction.atomic(durable=True):
        changed = RetrievalIndex.objects.filter(pk=index.pk, state=IndexState.READY).update(
            state=IndexState.FAILED, error=reason[:4000])
        if changed:
            audit_record(actor=None, action=AuditAction.RETRIEVAL_INDEX_CORRUPT, target=index, details={"reason": reason[:2000]})
    index.refresh_from_db()
    return index


def _claim_build(*, version_id: int) -> jobs.Claim:
    index = RetrievalIndex.objects.filter(version_id=version_id).first()
    if index is None:  # a task queued by hand for a version without its row: this delivery is its build
        version = datanet_selectors.version_by_id(pk=version_id)
        if version is None:
            raise ObjectDoesNotExist(f"Datanet version {version_id} does not exist: there is nothing to index.")
        if version.datanet.task_type != TaskType.DOCUMENTS:
            raise ValidationError("Only versions of a Documents Datanet get a search index.")
        index, _ = RetrievalIndex.objects.get_or_create(
            version=version, defaults={"version_hash": version.manifest_hash, "storage_prefix": _storage_prefix(version)})
    return jobs.claim_job(
        RetrievalIndex, index.pk, label=BUILD_LABEL, start_states=(IndexState.QUEUED,),
        running_state=IndexState.BUILDING, fail=_build_job_fail, on_start=_build_start,
        action="Ask an admin to queue the build again.",
    )


def _build_start(index: RetrievalIndex, claim: jobs.Claim) -> None:
    index.error, index.started_at = "", timezone.now()
    index.save(update_fields=["error", "started_at"])
    audit_record(actor=None, action=AuditAction.RETRIEVAL_INDEX_BUILD_START, target=index,
                 details={"attempt": index.attempts, "after_crash": claim.redelivered})


def _build_job_fail(index: RetrievalIndex, failure: jobs.JobFailure) -> RetrievalIndex:
    with transaction.atomic():
        RetrievalIndex.objects.filter(pk=index.pk).update(state=IndexState.FAILED, error=failure.message[:4000])
        audit_record(actor=None, action=AuditAction.RETRIEVAL_INDEX_FAILED, target=index,
                     details={"reason": failure.message[:2000], "code": failure.code})
    index.refresh_from_db()
    return index


@dataclass(frozen=True)
class _Built:
    manifest: engine.IndexManifest
    device: str
    size_bytes: int
    build_seconds: float
    store_seconds: float


def index_build(*, version_id: int) -> RetrievalIndex:
    """Build (or finish) the version's search index. Idempotent: a ready or failed index is returned as it
    is; one left `building` by a worker that died is built again from scratch in a fresh directory."""
    claim = _claim_build(version_id=version_id)
    if not claim.run:
        return claim.job
    index = claim.job

    def build() -> RetrievalIndex:
        with tempfile.TemporaryDirectory(prefix=f"lineage-retrieval-{index.version_hash[:12]}-") as work:
            built = _build(index=index, work=Path(work) / "index")
        return _build_finish(index=index, built=built)

    return jobs.run_job(index, build, label=BUILD_LABEL, fail=_build_job_fail,
                        expected=(BuildError, engine.RetrievalError))


def _build(*, index: RetrievalIndex, work: Path) -> _Built:
    """Embed the passages of the version's own files (verified against its identity first, so the index
    covers exactly what was published) and store the index files."""
    started = time.monotonic()
    version = index.version
    device = encoder_device()
    with datanet_services.version_files_local(version=version) as directory:
        check = verify_version(directory, expected_version_id=version.manifest_hash)
        if not check.ok:
            raise BuildError(f"The files of {version} do not match its identity ({'; '.join(check.problems)}); "
                             "no search index is built from them.")
        passages = ((f"r{record['row_id']}", record["text"] or "") for record in iter_version_records(directory))
        manifest = engine.build_index(
            work, passages, passage_encoder(device), lexical=True,
            meta={"datanet": version.datanet.slug, "version": version.number, "version_hash": version.manifest_hash},
        )
    build_seconds = time.monotonic() - started
    started = time.monotonic()
    size = _store_index_files(local=work, manifest=manifest, prefix=index.storage_prefix)
    return _Built(manifest, device, size, build_seconds, time.monotonic() - started)


def _store_index_files(*, local: Path, manifest: engine.IndexManifest, prefix: str) -> int:
    """Every file the manifest lists first, the manifest last (a reader that finds the manifest finds its
    files), each replacing what a crashed build left. Returns the bytes stored."""
    total = 0
    for name in [*sorted(manifest.files), MANIFEST_NAME]:
        target = f"{prefix}/{name}"
        if default_storage.exists(target):
            default_storage.delete(target)
        with open(local / name, "rb") as fh:
            stored = default_storage.save(target, File(fh))
        if stored != target:
            raise BuildError(f"Storage saved {target} as {stored}; another build is writing the same index.")
        total += (local / name).stat().st_size
    return total


def _build_finish(*, index: RetrievalIndex, built: _Built) -> RetrievalIndex:
    manifest = built.manifest
    with transaction.atomic():
        RetrievalIndex.objects.filter(pk=index.pk).update(
            state=IndexState.READY, index_hash=manifest.index_id, passage_count=manifest.passage_count,
            size_bytes=built.size_bytes, model_name=str(manifest.embedding.get("model", "")),
            model_fingerprint=str(manifest.embedding.get("fingerprint", "")), lexical=manifest.lexical is not None,
            device=built.device, built_at=timezone.now(), build_seconds=round(built.build_seconds, 3),
            store_seconds=round(built.store_seconds, 3), error="",
        )
        audit_record(actor=None, action=AuditAction.RETRIEVAL_INDEX_READY, target=index,
                     details={"index_hash": manifest.index_id, "passages": manifest.passage_count,
                              "seconds": round(built.build_seconds + built.store_seconds, 1), "device": built.device})
    index.refresh_from_db()
    return index
