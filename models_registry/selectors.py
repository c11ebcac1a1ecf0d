from django.db.models import Q
from django.http import Http404

from .models import BaseModel, FineTuneJob, JobState, ModelVersion


def jobs_for(*, user):
    return FineTuneJob.objects.filter(owner=user).select_related("base_model")


def job_get_for(*, user, pk: int) -> FineTuneJob:
    job = FineTuneJob.objects.filter(pk=pk, owner=user).select_related("base_model").first()
    if job is None:
        raise Http404("No such job.")
    return job


def model_versions_visible_to(*, user):
    """Deployed models are public; owners also see their undeployed ones."""
    queryset = ModelVersion.objects.select_related("base_model", "owner")
    if getattr(user, "is_authenticated", False):
        return queryset.filter(Q(deployed=True) | Q(owner=user))
    return queryset.filter(deployed=True)


def model_version_get_visible(*, slug: str, user) -> ModelVersion:
    version = model_versions_visible_to(user=user).filter(slug=slug).first()
    if version is None:
        raise Http404("No such model.")
    return version


def deployed_model_versions():
    return ModelVersion.objects.filter(deployed=True).select_related("base_model", "owner")


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
