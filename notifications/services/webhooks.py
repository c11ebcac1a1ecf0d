"""A person's webhooks: add one (their own events, or a Datanet's they own), remove one, send a test event."""

import uuid

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.services import AuditAction, audit_record

from .. import catalogue
from ..models import Event, Webhook, WebhookDelivery
from ..safe_http import url_problem
from ..signing import secret_new
from .dispatch import payload_for


def _can_manage(*, datanet, user) -> bool:
    from ..datanet_access import datanet_permissions  # registered by datanets/apps.py

    return datanet_permissions(datanet=datanet, user=user).can_manage


def webhook_create(*, owner, url: str, events, datanet=None, description: str = "") -> Webhook:
    """Check the URL (https and a public host outside development), the events (known, and allowed for a
    Datanet's webhook where one is named) and the owner's right to the Datanet, then store the webhook
    with a new signing secret."""
    url = (url or "").strip()
    problem = url_problem(url, allow_private=settings.WEBHOOKS_ALLOW_PRIVATE_URLS) if url else "Enter the URL to send events to."
    if not problem and len(url) > 2000:
        problem = "The URL is longer than 2,000 characters; use a shorter one."
    if problem:
        raise ValidationError({"url": problem})
    scope = "datanet" if datanet is not None else "user"
    allowed = catalogue.event_types_for(scope)
    events = sorted(set(events or []))
    unknown = [e for e in events if e not in allowed]
    if unknown or not events:
        raise ValidationError({"events": (f"Not available for {'a Datanet' if datanet else 'your account'}: "
                                          f"{', '.join(unknown)}. " if unknown else "Choose at least one event. ")
                               + f"Choose from {', '.join(allowed)}."})
    if datanet is not None and not _can_manage(datanet=datanet, user=owner):
        raise PermissionDenied("Only the Datanet's owner adds webhooks for it.")
    with transaction.atomic(durable=True):
        if Webhook.objects.filter(owner=owner).count() >= settings.WEBHOOKS_MAX_PER_USER:
            raise ValidationError(f"You already have {settings.WEBHOOKS_MAX_PER_USER} webhooks, the most allowed; "
                                  "remove one you no longer use first.")
        webhook = Webhook.objects.create(owner=owner, datanet=datanet, url=url, events=events, secret=secret_new(),
                                         description=(description or "").strip()[:120])
        audit_record(actor=owner, action=AuditAction.NOTIFICATIONS_WEBHOOK_CREATE, target=webhook,
                     details={"url": url, "events": events, "datanet": datanet.slug if datanet else None})
    return webhook


def webhook_delete(*, webhook: Webhook, actor) -> None:
    if webhook.owner_id != getattr(actor, "pk", None):
        raise PermissionDenied("Only the webhook's owner removes it.")
    with transaction.atomic(durable=True):
        audit_record(actor=actor, action=AuditAction.NOTIFICATIONS_WEBHOOK_DELETE, target=webhook, details={"url": webhook.url})
        webhook.delete()


def webhook_send_test(*, webhook: Webhook, actor) -> WebhookDelivery:
    """Queue a `webhook.test` event to this webhook only (delivered, signed and logged like any other)."""
    from ..tasks import webhook_deliver_task

    if webhook.owner_id != getattr(actor, "pk", None):
        raise PermissionDenied("Only the webhook's owner sends it test events.")
    with transaction.atomic(durable=True):
        data = {"webhook": {"id": webhook.pk, "url": webhook.url},
                "message": "A test event sent from the webhook's page. Verify its signature as for any other event."}
        event = Event.objects.create(public_id=f"evt_{uuid.uuid4().hex}", key=f"{catalogue.TEST_EVENT}:{uuid.uuid4().hex}",
                                     type=catalogue.TEST_EVENT, data=data)
        delivery = WebhookDelivery.objects.create(webhook=webhook, event=event, payload=payload_for(event, data))
        audit_record(actor=actor, action=AuditAction.NOTIFICATIONS_WEBHOOK_TEST, target=webhook, details={"event": event.public_id})
        webhook_deliver_task.delay_on_commit(delivery.pk)
    return delivery
