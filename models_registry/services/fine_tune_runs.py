"""A fine-tune job's run on a gpu worker: `fine_tune_run` claims the job, turns its Datanet versions into the
training engine's inputs (`models_registry.training`), follows its progress and cancellation, and ends it:
failed or cancelled (`_job_finish`), or succeeded with its model version registered (`model_version_register`:
the adapter stored, the immutable `ModelVersion` recorded, attribution's index build queued on commit)."""

import time
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors
from lineage import jobs
from notifications import notify

# Torch-free modules of the training engine only; ``training.run_training`` (torch, transformers,
# peft) is resolved when a worker runs a job, so web processes never load those libraries.
from .. import training
from ..models import FineTuneJob, JobState, ModelVersion
from ..signals import model_version_registered
from ..training.errors import TrainingCancelled, TrainingFailed
from ..training.spec import TrainingRow, TrainingSpec
from .base_models import base_model_source

LOG_TAIL_LINES = 200
CANCEL_POLL_S = 2.0
FINE_TUNE_LABEL = "fine-tune"  # names the job in messages and logs (`lineage.jobs`)


def _spec(*, task, base_model, label_names, params) -> TrainingSpec:
    return TrainingSpec(
        task=task,
        base=base_model_source(base_model),
        label_names=tuple(label_names),
        lora_r=int(params["lora_r"]),
        lora_alpha=float(params["lora_alpha"]),
        lora_dropout=float(params["lora_dropout"]),
        lora_target_modules=tuple(params["lora_target_modules"]) or None,
        learning_rate=float(params["learning_rate"]),
        epochs=int(params["epochs"]),
        batch_size=int(params["batch_size"]),
        max_seq_length=int(params["max_seq_length"]),
        eval_fraction=float(params["eval_fraction"]),
        seed=int(params["seed"]),
    )


def _job_work_dir(job: FineTuneJob) -> Path:
    # The creation time keeps a restored or reset database from pointing a new job at an old run's files.
    return Path(settings.TRAINING_WORK_DIR) / f"job-{job.pk}-{job.created_at:%Y%m%d%H%M%S%f}"


def _append_log(job_id: int, line: str) -> None:
    job = FineTuneJob.objects.only("log_tail").get(pk=job_id)
    lines = (job.log_tail.splitlines() + [f"{timezone.now():%H:%M:%S} {line}"])[-LOG_TAIL_LINES:]
    FineTuneJob.objects.filter(pk=job_id).update(log_tail="\n".join(lines))


def _training_rows(job: FineTuneJob):
    rows, dataset_versions = [], {}
    for version in job.datanet_versions.select_related("datanet").order_by("pk"):
        dataset_versions[f"datanet:{version.datanet.slug}:v{version.number}"] = version.manifest_hash
        for row_id, contributor_id, fields in datanet_selectors.version_training_rows(version=version):
            rows.append(TrainingRow(row_id=row_id, contributor_id=contributor_id, fields=fields))
    return rows, dataset_versions


def fine_tune_run(*, job_id: int) -> FineTuneJob:
    """Run (or resume) a job on this worker. Idempotent: a finished job returns at once; a redelivered
    task of a job whose worker died resumes from the engine's last checkpoint in the job's work dir, up
    to `TRAINING_MAX_DELIVERIES` deliveries (`lineage.jobs`). Training's own failures are shown as they
    are; an unexpected error fails the job with a generic message and an error id (details logged)."""
    with transaction.atomic(durable=True):
        job = FineTuneJob.objects.select_for_update().get(pk=job_id)
        if job.is_active and job.cancel_requested:
            job.state, job.finished_at = JobState.CANCELLED, timezone.now()
            job.save(update_fields=["state", "finished_at"])
            return job
        # Each delivery that died (killed for memory, machine lost) resumed from a checkpoint; past the
        # cap, the job is failing for a reason that retrying will not fix.
        claim = jobs.claim_job(
            FineTuneJob, job_id, label=FINE_TUNE_LABEL, start_states=(JobState.QUEUED,),
            running_state=JobState.RUNNING, fail=_job_fail, on_start=_job_start,
            max_attempts=settings.TRAINING_MAX_DELIVERIES, cause="the worker crashed each time (often: out of memory)",
            action="Lower the batch size or the maximum sequence length and launch it again, or contact an admin.",
        )
    if not claim.run:
        return claim.job
    return jobs.run_job(claim.job, lambda: _fine_tune_train(claim.job), label=FINE_TUNE_LABEL, fail=_job_fail,
                        expected=(TrainingFailed,))


def _job_start(job: FineTuneJob, claim) -> None:
    job.started_at = job.started_at or timezone.now()
    job.save(update_fields=["started_at"])


def _job_fail(job: FineTuneJob, failure) -> FineTuneJob:
    return _job_finish(job_id=job.pk, state=JobState.FAILED, message=failure.message)


def _fine_tune_train(job: FineTuneJob) -> FineTuneJob:
    _append_log(job.pk, f"worker picked the job up (delivery {job.attempts})")
    rows, dataset_versions = _training_rows(job)
    spec = _spec(task=job.task, base_model=job.base_model, label_names=job.label_names, params=job.hyperparameters)
    last_cancel_check = [0.0, False]

    def on_progress(event):
        updates = {"step": event.step, "total_steps": event.total_steps, "epoch": event.epoch, "eta_s": event.eta_s,
                   "examples_per_s": event.examples_per_s}
        FineTuneJob.objects.filter(pk=job.pk).update(**updates)
        if event.loss is not None:
            current = FineTuneJob.objects.only("loss_curve").get(pk=job.pk).loss_curve
            FineTuneJob.objects.filter(pk=job.pk).update(loss_curve=current + [[event.step, round(event.loss, 5)]])
        # The cancellation is logged once, by `_job_finish`, with where it stopped.
        if event.message and event.message != "cancelled":
            _append_log(job.pk, event.message)

    def should_cancel():
        now = time.monotonic()
        if now - last_cancel_check[0] > CANCEL_POLL_S:
            last_cancel_check[0] = now
            last_cancel_check[1] = FineTuneJob.objects.filter(pk=job.pk, cancel_requested=True).exists()
        return last_cancel_check[1]

    try:
        result = training.run_training(spec, rows, _job_work_dir(job), on_progress, should_cancel, dataset_versions=dataset_versions,
                              checkpoint_every_steps=settings.TRAINING_CHECKPOINT_EVERY_STEPS)
    except TrainingCancelled as stopped:
        return _job_finish(job_id=job.pk, state=JobState.CANCELLED,
                           message=f"cancelled by the owner after step {stopped.step} of {stopped.total_steps}; "
                                   "the checkpoint is kept")
    return model_version_register(job_id=job.pk, result=result)


# The states `_job_finish` ends a job in, and what each is audited as.
FINISH_AUDIT_ACTIONS = {JobState.FAILED: AuditAction.FINE_TUNE_FAILED, JobState.CANCELLED: AuditAction.FINE_TUNE_CANCELLED}


def _job_finish(*, job_id: int, state: str, message: str) -> FineTuneJob:
    _append_log(job_id, message)
    with transaction.atomic():
        job = FineTuneJob.objects.select_for_update().get(pk=job_id)
        job.state, job.finished_at = state, timezone.now()
        if state == JobState.FAILED:
            job.error = message
        job.save(update_fields=["state", "finished_at", "error"])
        audit_record(actor=None, action=FINISH_AUDIT_ACTIONS[state], target=job, details={"message": message[:2000]})
        notify.event(kind="fine_tune.finished", object_id=job.pk)
    return job


def _store_model_dir(model_dir: Path, version_hash: str) -> str:
    prefix = f"models/{version_hash}"
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        name = f"{prefix}/{path.relative_to(model_dir).as_posix()}"
        if default_storage.exists(name):
            default_storage.delete(name)
        with open(path, "rb") as fh:
            default_storage.save(name, File(fh))
    return prefix


def _lineage(job: FineTuneJob, manifest: dict) -> dict:
    contributors_by_row = manifest["content"]["data"].get("row_contributors", {})
    datanets = []
    for version in job.datanet_versions.select_related("datanet"):
        datanets.append({
            "datanet": version.datanet.slug, "name": version.datanet.name, "version": version.number,
            "version_hash": version.manifest_hash, "licence": version.datanet.licence, "rows": version.row_count,
            "contributors": version.contributor_count,
        })
    return {"datanets": datanets, "rows": sum(d["rows"] for d in datanets),
            "contributors": len(set(contributors_by_row.values())) or max((d["contributors"] for d in datanets), default=0)}


def _unique_model_slug(name: str, version_hash: str) -> str:
    base = slugify(name)[:80] or "model"
    slug = f"{base}-{version_hash[:8]}"
    return slug if not ModelVersion.objects.filter(slug=slug).exists() else f"{base}-{version_hash[:16]}"


def model_version_register(*, job_id: int, result) -> FineTuneJob:
    """Store the adapter and manifest, and record the immutable model version (once per job)."""
    job = FineTuneJob.objects.select_related("base_model").get(pk=job_id)
    if ModelVersion.objects.filter(job=job).exists():
        return job
    prefix = _store_model_dir(Path(result.model_dir), result.model_version_id)
    with transaction.atomic(durable=True):
        job = FineTuneJob.objects.select_for_update().get(pk=job_id)
        version = ModelVersion.objects.create(
            job=job, owner=job.owner, base_model=job.base_model, name=job.name,
            slug=_unique_model_slug(job.name, result.model_version_id), version_hash=result.model_version_id,
            task=job.task, label_names=job.label_names, storage_prefix=prefix, manifest=result.manifest,
            metrics=result.metrics, base_metrics=result.base_metrics, lineage=_lineage(job, result.manifest),
        )
        job.state, job.finished_at = JobState.SUCCEEDED, timezone.now()
        job.resumed_from_step = result.resumed_from_step
        job.step = job.total_steps or job.step
        job.save(update_fields=["state", "finished_at", "resumed_from_step", "step"])
        audit_record(actor=None, action=AuditAction.MODEL_VERSION_REGISTER, target=version,
                     details={"hash": version.version_hash, "job": job.pk, "metrics": result.metrics})
        # Listeners (the attribution app queues its index build) run once the version is committed.
        transaction.on_commit(lambda: model_version_registered.send(sender=ModelVersion, version=version))
        notify.event(kind="fine_tune.finished", object_id=job.pk)
    _append_log(job.pk, f"registered model version {result.model_version_id[:12]}")
    return job
