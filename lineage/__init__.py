# The Celery app is imported here so that shared_task uses it and `delay_on_commit` is bound.
from .celery import app as celery_app

__all__ = ("celery_app",)
