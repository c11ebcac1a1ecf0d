"""Which e-mails a person gets (every kind is on until they turn it off)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.services import AuditAction, audit_record

from ..catalogue import EMAIL_KINDS
from ..models import NotificationSettings


def notification_settings_update(*, user, choices: dict) -> NotificationSettings:
    """Set the e-mail kinds in `choices` ({kind: on}); kinds left out keep their value."""
    unknown = sorted(set(choices) - set(EMAIL_KINDS))
    if unknown:
        raise ValidationError(f"Unknown e-mail kind(s): {', '.join(unknown)}. Choose from {', '.join(EMAIL_KINDS)}.")
    with transaction.atomic():
        current, _ = NotificationSettings.objects.select_for_update().get_or_create(user=user)
        changed = {}
        for kind, on in choices.items():
            field = EMAIL_KINDS[kind].field
            if getattr(current, field) != bool(on):
                setattr(current, field, bool(on))
                changed[kind] = bool(on)
        if changed:
            current.save()
            audit_record(actor=user, action=AuditAction.NOTIFICATIONS_SETTINGS_UPDATE, target=current, details=changed)
    return current
