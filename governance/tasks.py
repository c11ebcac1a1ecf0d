"""Thin Celery wrappers around governance services; safe to run twice. `governance.tasks.chain_*` run on
the `chain` queue, next to rewards' chain indexers."""

from celery import shared_task


@shared_task(name="governance.tasks.chain_index_governance", acks_late=True)
def chain_index_governance() -> int:
    """Beat, every minute: mirror the governor, the registry and the stakes; apply the slash rule; book done
    slashes as the honest contributors' earnings (paid by the next epoch close) and release their OPEN from the
    Datanet's pool to the treasury that funds that epoch."""
    from rewards.chainio import ChainUnavailable

    from .services import governance_index, slashes_book, slashes_release, stake_slashes_enforce, stakes_index

    recorded = governance_index()
    try:
        recorded += stakes_index()
    except ChainUnavailable:  # no stakes contract configured here: governance alone
        return recorded
    stake_slashes_enforce()
    slashes_book()
    slashes_release()
    return recorded


@shared_task(name="governance.tasks.chain_wallet_action", acks_late=True)
def chain_wallet_action(action_id: int) -> str:
    from .services import wallet_action_run

    return wallet_action_run(action_id=action_id).state
