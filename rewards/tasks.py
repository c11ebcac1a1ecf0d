"""Thin Celery wrappers around rewards services; each is safe to run twice. Tasks named
`rewards.tasks.chain_*` are routed to the `chain` queue (one consumer hands out nonces)."""

from celery import shared_task


@shared_task(name="rewards.tasks.fees_settle", acks_late=True)
def fees_settle() -> int:
    """Book the recorded fees in batches (beat every few seconds, and queued on demand after inferences)."""
    from .services import fees_settle_pending

    return fees_settle_pending()


@shared_task(name="rewards.tasks.epoch_close_scheduled")
def epoch_close_scheduled() -> None:
    """Beat entry point (every REWARDS_EPOCH_CHECK_EVERY_S): queue the close on the chain queue once the epoch
    length in force (governed by proposal, else REWARDS_EPOCH_LENGTH_S) has passed since the last epoch froze."""
    from .services import epoch_close_due

    if epoch_close_due():
        chain_epoch_close.delay()


@shared_task(name="rewards.tasks.chain_epoch_close", acks_late=True, bind=True, max_retries=8)
def chain_epoch_close(self, actor_id: int | None = None) -> dict:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from .models import Epoch, EpochState
    from .services import EpochBlocked, epoch_close

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    try:
        epoch = epoch_close(actor=actor)
    except EpochBlocked:
        # A worker killed mid-close keeps its lease until it lapses. The redelivered task must try again
        # then; failing now would leave the epoch half-published until next week's beat.
        lease_until = (Epoch.objects.exclude(state=EpochState.CLOSED).filter(lease_until__gt=timezone.now())
                       .values_list("lease_until", flat=True).first())
        if lease_until is None:
            raise  # a disagreement with the chain: a person has to look (reconciliation issues)
        raise self.retry(countdown=(lease_until - timezone.now()).total_seconds() + 1) from None
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


@shared_task(name="rewards.tasks.chain_claim_relay", acks_late=True)
def chain_claim_relay(relay_id: int) -> dict:
    """Send one queued "Claim for me" (`ClaimRelay`); queued on commit by `services.claim_relay_request`."""
    from .services import claim_relay_run

    relay = claim_relay_run(relay_id=relay_id)
    return {"relay": relay.pk, "state": relay.state, "tx_hash": relay.tx_hash}
