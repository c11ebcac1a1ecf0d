from celery import shared_task


@shared_task(name="accounts.tasks.platform_ping")
def platform_ping(token: str) -> dict:
    """A task that touches nothing: /healthz and the worker round-trip test use it."""
    import os

    return {"token": token, "worker_pid": os.getpid()}
