"""Thin Celery wrappers (queue default). Safe to deliver twice: the services make each step happen once."""

from celery import shared_task
from django.conf import settings


@shared_task(name="notifications.tasks.event_dispatch_task", acks_late=True)
def event_dispatch_task(kind: str, object_id) -> dict:
    from .services import event_dispatch

    event = event_dispatch(kind=kind, object_id=object_id)
    return {"kind": kind, "event": event.public_id if event else None}


# Retried by the task itself (the service says after how long), without a cap of Celery's: the service
# stops after WEBHOOKS_MAX_ATTEMPTS. The soft limit is a backstop above the HTTP timeout.
@shared_task(bind=True, name="notifications.tasks.webhook_deliver_task", acks_late=True, max_retries=None,
             soft_time_limit=settings.WEBHOOKS_TIMEOUT_S * 2 + 20, time_limit=settings.WEBHOOKS_TIMEOUT_S * 2 + 40)
def webhook_deliver_task(self, delivery_id: int) -> dict:
    from .services import webhook_delivery_attempt

    while True:
        outcome = webhook_delivery_attempt(delivery_id=delivery_id)
        if outcome.retry_in_s is None:
            return {"delivery": outcome.delivery_id, "state": outcome.state, "attempts": outcome.attempts,
                    "status_code": outcome.status_code}
        if not self.request.is_eager:
            raise self.retry(countdown=outcome.retry_in_s)
        # Run eagerly (CELERY_TASK_ALWAYS_EAGER, tests), Celery retries a task at once, without the countdown,
        # unless eager errors propagate (they do here): then its Retry escapes. This loop retries as it would.
