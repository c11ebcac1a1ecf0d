"""Writes for notifications. Each function takes keyword arguments; writes run in one transaction with
their audit row.

* `preferences`: `notification_settings_update` (which e-mails a person gets).
* `webhooks`: `webhook_create`, `webhook_delete`, `webhook_send_test`.
* `dispatch`: `event_dispatch` (an event, its e-mails and its webhook deliveries; run by a task), `payload_for`.
* `deliveries`: `webhook_delivery_attempt` (one signed POST, with the retry schedule), `retry_delay_s`.
* `secret_keys`: `webhook_secrets_rotate` (every stored secret re-encrypted under a new NOTIFICATIONS_SECRET_KEY;
  run by `manage.py notifications_rotate_secret_key`).
"""

from .deliveries import DeliveryOutcome, retry_delay_s, webhook_delivery_attempt
from .dispatch import event_dispatch, payload_for
from .preferences import notification_settings_update
from .secret_keys import SecretKeyRotation, SecretKeyRotationRefused, webhook_secrets_rotate
from .webhooks import webhook_create, webhook_delete, webhook_send_test

__all__ = [
    "DeliveryOutcome",
    "SecretKeyRotation",
    "SecretKeyRotationRefused",
    "event_dispatch",
    "notification_settings_update",
    "payload_for",
    "retry_delay_s",
    "webhook_create",
    "webhook_delete",
    "webhook_delivery_attempt",
    "webhook_secrets_rotate",
    "webhook_send_test",
]
