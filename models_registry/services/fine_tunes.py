"""A fine-tune job as its owner asks for it: the checks on the chosen Datanet versions and settings
(`fine_tune_check_datanets`, which the form asks too), then `fine_tune_create`, `fine_tune_cancel` and
`fine_tune_resume`. Each queues or stops the job's run on the gpu queue (`fine_tune_runs`)."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors

from ..models import BaseModel, FineTuneJob, JobState
from ..training.errors import InvalidTrainingInput
from ..training.spec import recipe_for_rows
from .fine_tune_runs import _append_log, _spec

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
            problems.append(f"{version} is {_a(version.datanet.task_type)} Datanet; this job's task is {task}.")
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
    from ..tasks import fine_tune_run_task

    with transaction.atomic(durable=True):
        job = FineTuneJob.objects.create(
            owner=owner, name=name[:120], base_model=base_model, task=task, label_names=label_names, hyperparameters=params,
        )
        job.datanet_versions.set(versions)
        audit_record(actor=owner, action=AuditAction.FINE_TUNE_CREATE, target=job,
                     details={"base": base_model.slug, "versions": [v.manifest_hash for v in versions], "params": params})
        fine_tune_run_task.delay_on_commit(job.pk)
    return job


def fine_tune_cancel(*, job: FineTuneJob, actor) -> FineTuneJob:
    if job.owner_id != actor.pk:
        raise PermissionDenied("Only the job's owner cancels it.")
    with transaction.atomic(durable=True):
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
    from ..tasks import fine_tune_run_task

    with transaction.atomic(durable=True):
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
