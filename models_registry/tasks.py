"""Thin Celery wrappers (queue gpu). Safe to deliver twice: the service resumes or returns."""

from celery import shared_task
from django.conf import settings


# The soft limit raises inside training, which ends the job as failed with the reason; the hard limit
# is the backstop for a worker that no longer answers.
@shared_task(name="models_registry.tasks.fine_tune_run_task", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=settings.TRAINING_TIME_LIMIT_S, time_limit=settings.TRAINING_TIME_LIMIT_S + 300)
def fine_tune_run_task(job_id: int) -> dict:
    from .services import fine_tune_run

    job = fine_tune_run(job_id=job_id)
    return {"job": job.pk, "state": job.state}
