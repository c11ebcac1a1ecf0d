from django.db.models import Q
from django.http import Http404

from datanets import selectors as datanet_selectors

from .models import BaseModel, FineTuneJob, JobState, ModelVersion
from .training.quality import learning_advice, learning_problems, majority_baseline


def jobs_for(*, user, state: str = ""):
    """The user's own fine-tunes (`state`: only those in it)."""
    jobs = FineTuneJob.objects.filter(owner=user).select_related("base_model")
    return jobs.filter(state=state) if state else jobs


def job_get_for(*, user, pk: int) -> FineTuneJob:
    job = FineTuneJob.objects.filter(pk=pk, owner=user).select_related("base_model").first()
    if job is None:
        raise Http404("No such job.")
    return job


def model_versions_visible_to(*, user, mine: bool = False):
    """Deployed models are public; owners also see their undeployed ones (`mine`: only the user's own)."""
    queryset = ModelVersion.objects.select_related("base_model", "owner")
    if mine:
        return queryset.filter(owner=user) if getattr(user, "is_authenticated", False) else queryset.none()
    if getattr(user, "is_authenticated", False):
        return queryset.filter(Q(deployed=True) | Q(owner=user))
    return queryset.filter(deployed=True)


def model_version_get_visible(*, slug: str, user) -> ModelVersion:
    version = model_versions_visible_to(user=user).filter(slug=slug).first()
    if version is None:
        raise Http404("No such model.")
    return version


def model_version_lineage_for(*, version: ModelVersion, user) -> dict:
    """The model's lineage as `user` may read it: {datanets: [...], rows, contributors}. Each training
    Datanet version keeps its row and contributor counts, licence and manifest hash (the hash pins the
    exact rows); one the user may not see loses its name, slug and number (`visible` false), since a
    public model card must not reveal that a private Datanet exists, nor what it is called."""
    lineage = version.lineage or {}
    entries = lineage.get("datanets", [])
    slugs = [d["datanet"] for d in entries]
    visible = set(datanet_selectors.datanets_visible_to(user=user).filter(slug__in=slugs).values_list("slug", flat=True))
    datanets = []
    for entry in entries:
        shown = entry["datanet"] in visible
        datanets.append({
            "visible": shown, "datanet": entry["datanet"] if shown else None, "name": entry["name"] if shown else None,
            "version": entry["version"] if shown else None, "version_hash": entry["version_hash"],
            "licence": entry.get("licence", ""), "rows": entry["rows"], "contributors": entry["contributors"],
        })
    return {"datanets": datanets, "rows": lineage.get("rows", 0), "contributors": lineage.get("contributors", 0)}


def datanet_version_for_training(*, user, datanet_slug: str, number: int):
    """(version, problem): the Datanet version a fine-tune request names, or why it cannot be used. A
    Datanet the user may not see reads as missing, so a request cannot probe for private Datanets."""
    datanet = datanet_selectors.datanets_visible_to(user=user).filter(slug=datanet_slug).first()
    if datanet is None:
        return None, f"No Datanet “{datanet_slug}” that you can see."
    version = datanet_selectors.versions_for(datanet=datanet).filter(number=number).first()
    if version is None:
        latest = datanet_selectors.versions_for(datanet=datanet).first()
        hint = f"its latest is v{latest.number}" if latest else "it has no published version yet"
        return None, f"“{datanet.name}” has no version {number} ({hint})."
    return version, None


# --- The model card's figures: what was trained on, what was held out, and whether it learned. -----

# (label, how to show it) of each evaluation metric, in the order the card lists them.
METRIC_DISPLAY = {
    "accuracy": ("Accuracy", "percent"),
    "macro_f1": ("Macro F1", "percent"),
    "loss": ("Loss", "decimal"),
    "perplexity": ("Perplexity", "decimal2"),
    "n_examples": ("Held-out rows", "count"),
    "n_tokens": ("Held-out tokens", "count"),
}
NOT_MEASURED = "not measured"


def _metric_text(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "percent":
        return f"{float(value):.1%}"
    if kind == "count":
        return f"{round(float(value)):,}"
    if kind == "decimal2":
        return f"{float(value):,.2f}"
    return f"{float(value):.4f}"


def _train_losses(version: ModelVersion) -> list[float]:
    """The training loss over the run: per epoch when there were two or more, else the live curve."""
    per_epoch = version.manifest.get("content", {}).get("training", {}).get("train_loss_per_epoch") or []
    if len(per_epoch) >= 2:
        return list(per_epoch)
    curve = getattr(getattr(version, "job", None), "loss_curve", None) or []
    return [loss for _, loss in curve]


def model_version_learning_warning(*, version: ModelVersion) -> dict | None:
    """{"problems": [...], "advice": "..."} when the fine-tuned model shows signs of not having learned
    (see `training.quality`); None when it shows none."""
    data = version.manifest.get("content", {}).get("data", {})
    problems = learning_problems(task=version.task, metrics=version.metrics, base_metrics=version.base_metrics,
                                 label_names=version.label_names, train_losses=_train_losses(version))
    if not problems:
        return None
    n_rows = len(data.get("train_row_ids", [])) + len(data.get("eval_row_ids", []))
    epochs = version.manifest.get("content", {}).get("hyperparameters", {}).get("epochs")
    return {"problems": problems,
            "advice": learning_advice(n_rows=n_rows, n_labels=len(version.label_names), epochs=epochs)}


def model_version_card(*, version: ModelVersion) -> dict:
    """The model card's training and evaluation figures, ready to show:

    - `trained_rows`, `held_out_rows`, `trained_contributors`: from the manifest's recorded split (the
      rows the adapter was trained on, not the Datanet versions' totals);
    - `metrics`: [{key, label, value, finetuned, base}] with counts as integers and rates as percentages;
      a classifier's base-model figures are "not measured" (the base has no trained head for these
      labels, so its accuracy would only describe a random head);
    - `baseline`: the majority-class rate of the eval split (classification), the honest comparison;
    - `warning`: `model_version_learning_warning`."""
    data = version.manifest.get("content", {}).get("data", {})
    train_ids, eval_ids = data.get("train_row_ids", []), data.get("eval_row_ids", [])
    contributors = data.get("row_contributors", {})
    classification = version.task == "text-classification"
    rows = []
    for key, value in version.metrics.items():
        if key not in METRIC_DISPLAY:
            continue
        label, kind = METRIC_DISPLAY[key]
        base_value = (version.base_metrics or {}).get(key)
        if classification and kind != "count":
            base = NOT_MEASURED
        else:
            base = _metric_text(base_value, kind) if base_value is not None else NOT_MEASURED
        rows.append({"key": key, "label": label, "value": value, "finetuned": _metric_text(value, kind), "base": base})
    rows.sort(key=lambda r: list(METRIC_DISPLAY).index(r["key"]))
    baseline = majority_baseline(version.metrics, version.label_names) if classification else None
    return {
        "trained_rows": len(train_ids),
        "held_out_rows": len(eval_ids),
        "trained_contributors": len({contributors[r] for r in train_ids if r in contributors}),
        "metrics": rows,
        "base_measured": not classification,
        "baseline": baseline,
        "baseline_rate": f"{baseline.rate:.1%}" if baseline else "",
        "warning": model_version_learning_warning(version=version),
    }


def deployed_model_versions():
    return ModelVersion.objects.filter(deployed=True).select_related("base_model", "owner")


def model_version_training_rows(*, version_hashes) -> dict[str, dict[int, int]]:
    """{version hash: {contributor user id: rows of theirs the adapter was trained on}}, from each version's
    manifest (its recorded train split, not the Datanet versions' totals). The fee settlement divides the
    contributors' part of an answer that has no receipt by it: row counts act on rows, so spreading rows
    over several accounts neither gains nor loses anything. Unknown hashes are left out."""
    out: dict[str, dict[int, int]] = {}
    for version_hash, manifest in ModelVersion.objects.filter(version_hash__in=set(version_hashes)).values_list(
            "version_hash", "manifest"):
        data = (manifest or {}).get("content", {}).get("data", {})
        contributors = data.get("row_contributors", {})
        counts: dict[int, int] = {}
        for row_id in data.get("train_row_ids", []):
            owner = str(contributors.get(row_id, ""))
            if owner.isdigit():
                counts[int(owner)] = counts.get(int(owner), 0) + 1
        out[version_hash] = counts
    return out


def model_version_by_hash(*, version_hash: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(version_hash=version_hash).first()


def base_models():
    return BaseModel.objects.filter(is_active=True)


def active_job_count(*, user) -> int:
    return FineTuneJob.objects.filter(owner=user, state__in=[JobState.QUEUED, JobState.RUNNING]).count()


# --- Reads for insights' daily summaries: plain rows grouped by UTC day, for [start, end) datetimes.

def fine_tune_daily_totals(*, start, end) -> dict[str, list[dict]]:
    """Jobs launched per day, jobs finished per (day, final state), versions registered per day."""
    from django.db.models import Count
    from django.db.models.functions import TruncDate

    def per_day(queryset, field, *extra):
        return list(queryset.annotate(day=TruncDate(field)).values("day", *extra).annotate(n=Count("id")).order_by())

    return {
        "launched": per_day(FineTuneJob.objects.filter(created_at__gte=start, created_at__lt=end), "created_at"),
        "finished": per_day(FineTuneJob.objects.filter(finished_at__gte=start, finished_at__lt=end), "finished_at",
                            "state"),
        "registered": per_day(ModelVersion.objects.filter(created_at__gte=start, created_at__lt=end), "created_at"),
    }


def model_versions_index() -> dict[str, dict]:
    """{version hash: {id, slug, name, deployed}} of every model version."""
    return {v["version_hash"]: v for v in ModelVersion.objects.values("id", "version_hash", "slug", "name", "deployed")}


# --- Reads for the other apps, which never import models_registry.models (tests/foundation/test_app_boundaries.py).

def model_version_by_id(*, pk) -> ModelVersion | None:
    return ModelVersion.objects.filter(pk=pk).first()


def model_version_by_slug(*, slug: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(slug=slug).first()


def model_version_slug_taken(*, slug: str) -> bool:
    return ModelVersion.objects.filter(slug=slug).exists()


def deployed_model_versions_of(*, owner, tasks):
    """The owner's deployed model versions of these tasks, by name."""
    return ModelVersion.objects.filter(owner=owner, deployed=True, task__in=list(tasks)).order_by("name")


def job_by_id(*, pk) -> FineTuneJob | None:
    return FineTuneJob.objects.select_related("owner").filter(pk=pk).first()


def model_version_of_job(*, job: FineTuneJob) -> ModelVersion | None:
    """The version a fine-tune registered, or None (it has not succeeded)."""
    return ModelVersion.objects.filter(job=job).first()
