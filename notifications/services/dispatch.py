"""An event, once: record it, make a delivery per subscribed webhook, send its e-mails.

Run by `tasks.event_dispatch_task`, which may be delivered more than once. The event's key makes the
record and its deliveries happen once; e-mails are sent until the event is marked `emailed_at`, so a
worker that dies between sending and marking would send them again on redelivery (a rare duplicate is
better than a lost notice).
"""

import logging
import uuid

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.services import AuditAction, audit_record

from ..builders import BUILDERS, BuiltEvent
from ..models import Event, Webhook, WebhookDelivery
from ..selectors import email_choices

logger = logging.getLogger(__name__)

MAIL_BATCH = 100  # messages per SMTP connection


def payload_for(event: Event, data: dict) -> dict:
    """The JSON body webhooks receive (Stripe's shape): id, type, created (Unix seconds) and data."""
    return {"id": event.public_id, "type": event.type, "created": int(event.created_at.timestamp()), "data": data}


def event_dispatch(*, kind: str, object_id) -> Event | None:
    """Build the event for this kind and object, record it and queue its deliveries (once per key), and
    send its e-mails to the people who have not turned that kind off. None when there is nothing to say."""
    from ..tasks import webhook_deliver_task

    builder = BUILDERS.get(kind)
    if builder is None:
        logger.warning("notification kind %r has no builder; nothing sent", kind)
        return None
    built = builder(object_id)
    if built is None:
        return None
    with transaction.atomic(durable=True):
        event, created = Event.objects.get_or_create(
            key=built.key, defaults={"public_id": f"evt_{uuid.uuid4().hex}", "type": built.type, "data": built.data})
        if created:
            deliveries = [WebhookDelivery(webhook=hook, event=event, payload=payload_for(
                event, {**built.data, **(built.per_user.get(hook.owner_id, {}) if hook.datanet_id is None else {})}))
                for hook in _subscribed_webhooks(built)]
            deliveries = WebhookDelivery.objects.bulk_create(deliveries)
            audit_record(actor=None, action=AuditAction.NOTIFICATIONS_EVENT, target=event,
                         details={"type": event.type, "key": event.key, "deliveries": len(deliveries),
                                  "emails": len(built.emails)})
            for delivery in deliveries:
                webhook_deliver_task.delay_on_commit(delivery.pk)
    if event.emailed_at is None:
        sent = _emails_send(built)
        Event.objects.filter(pk=event.pk).update(emailed_at=timezone.now())
        logger.info("event %s (%s): %d e-mail(s) sent", event.public_id, event.type, sent)
    return event


def _subscribed_webhooks(built: BuiltEvent) -> list[Webhook]:
    """Active webhooks subscribed to the type: the concerned people's own, and the Datanet's while their
    owner still manages it (ownership can change after the webhook was made)."""
    from django.db.models import Q

    from ..datanet_access import datanet_permissions  # registered by datanets/apps.py

    scope = Q(datanet__isnull=True, owner_id__in=list(built.user_ids))
    if built.datanet_id is not None:
        scope |= Q(datanet_id=built.datanet_id)
    hooks = []
    for hook in Webhook.objects.filter(scope, active=True).select_related("datanet", "owner").order_by("pk"):
        if built.type not in hook.events:
            continue
        if hook.datanet_id is not None and not datanet_permissions(datanet=hook.datanet, user=hook.owner).can_manage:
            continue
        hooks.append(hook)
    return hooks


def _emails_send(built: BuiltEvent) -> int:
    wanted = email_choices(user_ids=[email.user_id for email in built.emails])
    footer = ("\n--\nYou get this e-mail because of your notification settings; change them here: "
              f"{settings.SITE_URL.rstrip('/')}{reverse('notifications:settings')}\n")
    messages = [EmailMessage(subject=email.subject, body=email.body + footer, from_email=settings.DEFAULT_FROM_EMAIL,
                             to=[email.to])
                for email in built.emails if email.to and wanted.get(email.user_id, {}).get(email.kind, True)]
    if not messages:
        return 0
    connection = get_connection()
    sent = 0
    for start in range(0, len(messages), MAIL_BATCH):
        sent += connection.send_messages(messages[start:start + MAIL_BATCH]) or 0
    return sent
