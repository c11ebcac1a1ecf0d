"""Which e-mails a person gets (every kind is on until they turn it off)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.services import AuditAction, audit_record
from lineage.model_update import model_update

from ..catalogue import EMAIL_KINDS
from ..models import NotificationSettings


def notification_settings_update(*, user, choices: dict) -> NotificationSettings:
    """Set the e-mail kinds in `choices` ({kind: on}); kinds left out keep their value."""
    unknown = sorted(set(choices) - set(EMAIL_KINDS))
    if unknown:
        raise ValidationError(f"Unknown e-mail kind(s): {', '.join(unknown)}. Choose from {', '.join(EMAIL_KINDS)}.")
    with transaction.atomic(durable=True):
        current, _ = NotificationSettings.objects.select_for_update().get_or_create(user=user)
        update = model_update(instance=current, fields=[kind.field for kind in EMAIL_KINDS.values()],
                              data={EMAIL_KINDS[kind].field: bool(on) for kind, on in choices.items()})
        if update.has_updated:
            changed = {kind: bool(on) for kind, on in choices.items() if EMAIL_KINDS[kind].field in update.changes}
            audit_record(actor=user, action=AuditAction.NOTIFICATIONS_SETTINGS_UPDATE, target=current, details=changed)
    return current
