"""Thin Celery wrappers (routed to the gpu queue by name). Safe to deliver twice: a ready index
returns at once, one left building by a worker that died is rebuilt from scratch."""

from celery import shared_task
from django.conf import settings


@shared_task(name="attribution.tasks.index_build_task", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=settings.ATTRIBUTION_BUILD_TIME_LIMIT_S,
             time_limit=settings.ATTRIBUTION_BUILD_TIME_LIMIT_S + 300)
def index_build_task(model_version_id: int) -> dict:
    from .services import index_build

    index = index_build(model_version_id=model_version_id)
    return {"model_version": model_version_id, "state": index.state, "index_hash": index.index_hash}
