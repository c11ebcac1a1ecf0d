"""Reads for notifications: e-mail choices, a person's webhooks and their delivery log."""

from django.shortcuts import get_object_or_404

from .catalogue import EMAIL_KINDS
from .models import NotificationSettings, Webhook, WebhookDelivery

DELIVERY_LOG_LIMIT = 50


def email_choices(*, user_ids) -> dict[int, dict[str, bool]]:
    """{user id: {kind: on}} for the users that have settings; a user left out gets every kind."""
    fields = [kind.field for kind in EMAIL_KINDS.values()]
    rows = NotificationSettings.objects.filter(user_id__in=list(set(user_ids))).values("user_id", *fields)
    return {row["user_id"]: {name: row[kind.field] for name, kind in EMAIL_KINDS.items()} for row in rows}


def email_wanted(*, user, kind: str) -> bool:
    """Whether this person gets e-mails of this kind (yes unless they turned it off)."""
    if kind not in EMAIL_KINDS:
        raise ValueError(f"Unknown e-mail kind {kind!r}; use one of {', '.join(EMAIL_KINDS)}.")
    return email_choices(user_ids=[user.pk]).get(user.pk, {}).get(kind, True)


def settings_for(*, user) -> dict[str, bool]:
    return {kind: True for kind in EMAIL_KINDS} | email_choices(user_ids=[user.pk]).get(user.pk, {})


def webhooks_for(*, user):
    return Webhook.objects.filter(owner=user).select_related("datanet").order_by("-created_at", "-id")


def webhook_get_for(*, user, pk) -> Webhook:
    """The user's own webhook, or 404 (another person's webhook is not found, whoever asks)."""
    return get_object_or_404(Webhook.objects.select_related("datanet"), pk=pk, owner_id=getattr(user, "pk", None))


def deliveries_for(*, webhook, limit: int = DELIVERY_LOG_LIMIT) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(webhook=webhook).select_related("event").order_by("-created_at", "-id")[:limit])


def datanets_managed_by(*, user):
    """Datanets whose webhooks this person may set: those they own."""
    from .datanet_access import datanets_managed_by as managed_by  # registered by datanets/apps.py

    return managed_by(user=user)
