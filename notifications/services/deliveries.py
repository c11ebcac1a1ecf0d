"""One attempt at a webhook delivery: a signed POST, its outcome in the delivery log, and when to try again.

Safe to run twice at once or again after a crash: an attempt first claims the delivery with a short lease
(a compare-and-set), so two workers never post the same delivery together, and a finished delivery is
never posted again. Any answer other than 2xx, and any failure to get an answer, is retried with
exponential backoff (`retry_delay_s`) up to `WEBHOOKS_MAX_ATTEMPTS`; a refused destination is not.
The delivery row is the log of its attempts (shown on the webhook's page), so attempts write no audit row.
"""

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from ..models import DeliveryState, WebhookDelivery
from ..safe_http import DeliveryError, UnsafeDestination, post_json
from ..secret_box import SecretBoxError
from ..signing import SIGNATURE_HEADER, payload_bytes, signature_header

USER_AGENT = "Lineage-Webhooks/1"
UNREADABLE_SECRET = ("Not sent: the webhook's signing secret cannot be decrypted with this server's "
                     "NOTIFICATIONS_SECRET_KEY (it, or the SECRET_KEY it defaults to, changed since the webhook "
                     "was added). Restore the old key, or re-encrypt the secrets under the new one "
                     "(manage.py notifications_rotate_secret_key); later attempts then go through. Or remove the "
                     "webhook and add it again for a new secret.")


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: int
    state: str
    attempts: int = 0
    status_code: int | None = None
    retry_in_s: int | None = None  # set when the task should try again after this long


def retry_delay_s(attempts: int) -> int:
    """Seconds to wait after `attempts` failed attempts: base, 2×base, 4×base, … capped."""
    return int(min(settings.WEBHOOKS_RETRY_BASE_S * 2 ** max(attempts - 1, 0), settings.WEBHOOKS_RETRY_MAX_S))


def _lease_s() -> float:
    return settings.WEBHOOKS_TIMEOUT_S * 2 + 30


def webhook_delivery_attempt(*, delivery_id: int) -> DeliveryOutcome:
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_until=now + timedelta(seconds=_lease_s()), attempts=F("attempts") + 1, last_attempt_at=now)
    delivery = WebhookDelivery.objects.select_related("webhook", "event").filter(pk=delivery_id).first()
    if delivery is None:
        return DeliveryOutcome(delivery_id, "gone")
    if not claimed:  # finished already, or another worker is posting it now
        return DeliveryOutcome(delivery_id, delivery.state, delivery.attempts, delivery.status_code)
    webhook = delivery.webhook
    status_code, excerpt, error, retryable = None, "", "", True
    body = payload_bytes(delivery.payload)
    try:
        secret = webhook.secret if webhook.active else ""
    except SecretBoxError:  # retried: restoring the key lets the next attempt through
        secret, error = None, UNREADABLE_SECRET
    if not webhook.active:
        error, retryable = "The webhook was switched off; nothing was sent.", False
    elif secret is not None:
        headers = {
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret=secret, timestamp=int(time.time()), body=body),
            "X-Lineage-Event": delivery.event.type, "X-Lineage-Delivery": str(delivery.pk),
        }
        try:
            result = post_json(webhook.url, body, headers, timeout_s=settings.WEBHOOKS_TIMEOUT_S,
                               allow_private=settings.WEBHOOKS_ALLOW_PRIVATE_URLS)
        except UnsafeDestination as exc:
            error, retryable = f"Refused: {exc}", False
        except DeliveryError as exc:
            error = f"No answer: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure is logged on the delivery and retried
            error = f"Failed: {type(exc).__name__}: {exc}"
        else:
            status_code, excerpt = result.status_code, result.excerpt
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: the endpoint must answer with a 2xx status to acknowledge the event."
    attempts = delivery.attempts
    fields = {"status_code": status_code, "response_excerpt": excerpt, "last_error": error[:2000], "lease_until": None}
    retry_in = None
    if not error:
        fields.update(state=DeliveryState.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    elif retryable and attempts < settings.WEBHOOKS_MAX_ATTEMPTS:
        retry_in = retry_delay_s(attempts)
        fields.update(next_attempt_at=timezone.now() + timedelta(seconds=retry_in))
    else:
        fields.update(state=DeliveryState.FAILED, next_attempt_at=None)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return DeliveryOutcome(delivery.pk, fields.get("state", DeliveryState.PENDING), attempts, status_code, retry_in)
