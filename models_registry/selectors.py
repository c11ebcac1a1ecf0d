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
