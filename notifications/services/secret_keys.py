"""Taking a new `NOTIFICATIONS_SECRET_KEY` into use: every stored webhook secret re-encrypted under it.

The operator sets the new key in the settings (or lets it follow a new `SECRET_KEY`), then runs
`manage.py notifications_rotate_secret_key` with the old one. All or nothing: the rows are locked and rewritten
in one transaction, and a secret that neither key opens stops the rotation before anything is written (naming
the webhooks), so a mistyped old key can never leave some secrets under one key and some under another.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from accounts.services import AuditAction, audit_record

from .. import secret_box
from ..models import Webhook


class SecretKeyRotationRefused(Exception):
    """Nothing was changed; the message says why and what to do."""


@dataclass(frozen=True)
class SecretKeyRotation:
    rotated: list[int] = field(default_factory=list)  # webhook ids re-encrypted (or, dry run, that would be)
    already_current: list[int] = field(default_factory=list)  # ids whose secret the current key already opens
    dry_run: bool = False


def _describe(webhook_ids: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(pk) for pk in webhook_ids[:limit])
    return shown + (f" and {len(webhook_ids) - limit} more" if len(webhook_ids) > limit else "")


def webhook_secrets_rotate(*, old_key: str, dry_run: bool = False) -> SecretKeyRotation:
    """Re-encrypt every webhook secret that `old_key` opens under the current `NOTIFICATIONS_SECRET_KEY`.

    Secrets the current key already opens are left as they are (a second run, or webhooks added since the
    key changed). Raises `SecretKeyRotationRefused`, changing nothing, when `old_key` is empty or is the
    current key, or when some secret opens with neither key."""
    new_key = settings.NOTIFICATIONS_SECRET_KEY
    if not old_key:
        raise SecretKeyRotationRefused("The old key is empty: give the key the secrets were encrypted with.")
    if old_key == new_key:
        raise SecretKeyRotationRefused(
            "The old key is the key this server uses now (NOTIFICATIONS_SECRET_KEY): set the new key in the "
            "settings first, then run this with the old one.")
    with transaction.atomic(durable=True):
        webhooks = list(Webhook.objects.select_for_update().order_by("pk").only("pk", "secret_encrypted"))
        rotated, current, unreadable = [], [], []
        for webhook in webhooks:
            try:
                secret_box.unseal(webhook.secret_encrypted, key=new_key)
            except secret_box.SecretBoxError:
                pass
            else:
                current.append(webhook.pk)
                continue
            try:
                clear = secret_box.unseal(webhook.secret_encrypted, key=old_key)
            except secret_box.SecretBoxError:
                unreadable.append(webhook.pk)
                continue
            webhook.secret_encrypted = secret_box.seal(clear, key=new_key)
            rotated.append(webhook)
        if unreadable:
            raise SecretKeyRotationRefused(
                f"Nothing was changed: the secret of webhook{'s' if len(unreadable) > 1 else ''} "
                f"{_describe(unreadable)} opens with neither the old key given nor the current "
                "NOTIFICATIONS_SECRET_KEY. Check the old key (for a key derived from an old SECRET_KEY, give that "
                "SECRET_KEY with --old-key-is-secret-key), or remove those webhooks (their owners add them again "
                "for new secrets) and run this again.")
        report = SecretKeyRotation(rotated=[w.pk for w in rotated], already_current=current, dry_run=dry_run)
        if dry_run or not rotated:
            return report
        Webhook.objects.bulk_update(rotated, ["secret_encrypted"], batch_size=500)
        audit_record(actor=None, action=AuditAction.NOTIFICATIONS_SECRET_KEY_ROTATE, object_type="notifications.webhook",
                     details={"rotated": len(rotated), "already_current": len(current),
                              "webhooks": report.rotated[:1000]})
    return report
