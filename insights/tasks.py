"""Thin Celery wrappers around `insights.services` (beat runs `summaries_refresh_recent`)."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def summaries_refresh_recent():
    """Recompute the last few days of summaries; idempotent, so a redelivered or overlapping run is harmless."""
    report = services.summaries_refresh_recent()
    return {"since": report.since.isoformat(), "facts": report.facts}

