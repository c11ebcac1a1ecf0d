"""Thin Celery wrappers around governance services; safe to run twice. `governance.tasks.chain_*` run on
the `chain` queue, next to rewards' chain indexers."""

from celery import shared_task


@shared_task(name="governance.tasks.chain_index_governance", acks_late=True)
def chain_index_governance() -> int:
    from .services import governance_index

    return governance_index()
