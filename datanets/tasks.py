"""Thin Celery wrappers: each calls one service and is safe to run twice (redelivery after a crash)."""

from celery import shared_task


@shared_task(name="datanets.tasks.contribution_validate_task", acks_late=True)
def contribution_validate_task(contribution_id: int) -> dict:
    from .services import contribution_validate

    contribution = contribution_validate(contribution_id=contribution_id)
    return {"contribution": contribution.pk, "state": contribution.state}


@shared_task(name="datanets.tasks.contribution_reviewed_email_task")
def contribution_reviewed_email_task(contribution_id: int) -> None:
    from .services import contribution_reviewed_email_send

    contribution_reviewed_email_send(contribution_id=contribution_id)
