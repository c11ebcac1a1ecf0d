"""Thin Celery wrappers around rewards services; each is safe to run twice. Tasks named
`rewards.tasks.chain_*` are routed to the `chain` queue (one consumer hands out nonces)."""

from celery import shared_task


@shared_task(name="rewards.tasks.epoch_close_scheduled")
def epoch_close_scheduled() -> None:
    """Beat entry point: queue the close on the chain queue."""
    chain_epoch_close.delay()


@shared_task(name="rewards.tasks.chain_epoch_close", acks_late=True)
def chain_epoch_close(actor_id: int | None = None) -> dict:
    from django.contrib.auth import get_user_model

    from .services import epoch_close

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    epoch = epoch_close(actor=actor)
    return {"epoch": epoch.number if epoch else None, "state": epoch.state if epoch else None}


@shared_task(name="rewards.tasks.chain_index_deposits", acks_late=True)
def chain_index_deposits() -> int:
    from .services import deposits_index

    return deposits_index()


@shared_task(name="rewards.tasks.chain_index_claims", acks_late=True)
def chain_index_claims() -> int:
    from .services import claims_index

    return claims_index()


@shared_task(name="rewards.tasks.chain_reconcile", acks_late=True)
def chain_reconcile() -> int:
    from .services import chain_reconcile as reconcile

    return len(reconcile())


@shared_task(name="rewards.tasks.chain_relay_claim", acks_late=True)
def chain_relay_claim(user_id: int) -> dict:
    from django.contrib.auth import get_user_model

    from .services import claim_relay

    return claim_relay(user=get_user_model().objects.get(pk=user_id))
