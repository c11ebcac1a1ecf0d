"""Thin Celery wrapper (routed to the gpu queue by `retrieval.tasks.*`). Safe to deliver twice: a ready index
returns at once, one left building by a worker that died is built again from scratch."""

from celery import shared_task
from django.conf import settings


@shared_task(name="retrieval.tasks.retrieval_index_build_task", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=settings.RETRIEVAL_BUILD_TIME_LIMIT_S,
             time_limit=settings.RETRIEVAL_BUILD_TIME_LIMIT_S + 300)
def retrieval_index_build_task(version_id: int) -> dict:
    from .services import index_build

    index = index_build(version_id=version_id)
    return {"version": version_id, "state": index.state, "index_hash": index.index_hash}
