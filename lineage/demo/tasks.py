"""The demo's chain step, for the worker (queued by `seed_demo` on the `chain` queue).

Under `make run` the seed runs before the chain node starts, so the step waits here, retrying every few
seconds until the node answers; `story.chain_story` itself is resumable and idempotent."""

from celery import shared_task

CHAIN_WAIT_RETRIES = 100
CHAIN_WAIT_S = 3


@shared_task(name="lineage.demo.tasks.demo_chain_story_task", bind=True, acks_late=True,
             max_retries=CHAIN_WAIT_RETRIES)
def demo_chain_story_task(self) -> str:
    from rewards.chainio import get_chain_client

    from .story import chain_story, chain_story_done

    if chain_story_done():
        return "already closed"
    if not get_chain_client().w3.is_connected():
        raise self.retry(countdown=CHAIN_WAIT_S)
    chain_story()
    return "closed"
