"""Writes for accounts: API keys and the audit trail. Each function is one transaction with its audit row."""

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, AuditAction, AuditEvent

KEY_PREFIX = "lin"
# Writing last_used_at on every request would turn reads into writes; a minute is precise enough.
LAST_USED_RESOLUTION_S = 60


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def audit_record(*, actor, action: AuditAction, target=None, object_type: str = "", object_id="",
                 details=None) -> AuditEvent:
    """Record who did what to which object. Call inside the transaction that makes the change. `action` is
    an `AuditAction` member (or its value); anything else is a programming error, refused before writing."""
    if action not in AuditAction.values:
        raise ValueError(f"Unknown audit action {action!r}: add it to accounts.models.AuditAction, or use one of "
                         "its members.")
    action = AuditAction(action)
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or target.pk
    details = details or {}
    encoded = json.dumps(details, default=str)
    if len(encoded) > settings.AUDIT_DETAIL_MAX_BYTES:
        details = {"truncated": True, "preview": encoded[: settings.AUDIT_DETAIL_MAX_BYTES // 2]}
    else:
        details = json.loads(encoded)
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        details=details,
    )


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # shown once, never stored


def api_key_create(*, user, name: str, scopes) -> IssuedKey:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name so you can recognise it later."})
    scopes = sorted(set(scopes or []))
    unknown = [s for s in scopes if s not in settings.API_KEY_SCOPES]
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(unknown)}. Choose from {', '.join(settings.API_KEY_SCOPES)}."}
        )
    if not scopes:
        raise ValidationError({"scopes": "Choose at least one scope."})
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic(durable=True):
        key = ApiKey.objects.create(user=user, name=name[:80], prefix=prefix, secret_hash=hash_secret(secret), scopes=scopes)
        audit_record(actor=user, action=AuditAction.API_KEY_CREATE, target=key, details={"name": key.name, "scopes": scopes})
    return IssuedKey(api_key=key, secret=secret)


def api_key_revoke(*, api_key: ApiKey, actor) -> ApiKey:
    with transaction.atomic(durable=True):
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_record(actor=actor, action=AuditAction.API_KEY_REVOKE, target=key, details={"name": key.name})
    return key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """Return the active key for a presented secret, or None. Constant-time comparison of hashes."""
    parts = (raw or "").split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    if not hmac.compare_digest(key.secret_hash, hash_secret(raw)):
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_S:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


@dataclass(frozen=True)
class DemoUsers:
    password: str
    by_role: dict


DEMO_PASSWORD = "lineage-demo-pass"
DEMO_USERS = (
    # role, email, display name, staff
    ("admin", "admin@lineage.local", "Ada Admin", True),
    ("owner", "owner@lineage.local", "Omar Owner", False),
    ("curator", "curator@lineage.local", "Cleo Curator", False),
    ("contributor", "alice@lineage.local", "Alice Contributor", False),
    ("contributor2", "bob@lineage.local", "Bob Contributor", False),
    ("contributor3", "carol@lineage.local", "Carol Contributor", False),
    ("user", "user@lineage.local", "Uma User", False),
)


def demo_users_ensure() -> DemoUsers:
    """Create the demo cast if missing, with verified emails so they can log in at once."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    User = get_user_model()
    by_role = {}
    with transaction.atomic(durable=True):
        for role, email, name, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(
                email=email,
                defaults={"username": email.split("@")[0], "display_name": name, "is_staff": staff, "is_superuser": staff},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
                audit_record(actor=None, action=AuditAction.DEMO_USER_CREATE, target=user, details={"role": role})
            EmailAddress.objects.get_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
            by_role[role] = user
    return DemoUsers(password=DEMO_PASSWORD, by_role=by_role)
