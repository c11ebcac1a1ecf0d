"""Who belongs to a Datanet: the owner adds curators and contributors, and removes them."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.services import AuditAction, audit_record

from ..models import Datanet, Membership, Role
from ..selectors import datanet_permissions


def membership_set(*, datanet: Datanet, actor, user, role: str) -> Membership:
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner manages members.")
    if role not in (Role.CURATOR, Role.CONTRIBUTOR):
        raise ValidationError({"role": "Members are curators or contributors; ownership is not transferable here."})
    if user.pk == datanet.owner_id:
        raise ValidationError({"user": "The owner is already a member."})
    with transaction.atomic(durable=True):
        membership, _ = Membership.objects.update_or_create(datanet=datanet, user=user, defaults={"role": role})
        audit_record(actor=actor, action=AuditAction.DATANET_MEMBER_SET, target=datanet, details={"user": user.pk, "role": role})
    return membership


def membership_remove(*, datanet: Datanet, actor, user) -> None:
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner manages members.")
    with transaction.atomic(durable=True):
        Membership.objects.filter(datanet=datanet, user=user).exclude(role=Role.OWNER).delete()
        audit_record(actor=actor, action=AuditAction.DATANET_MEMBER_REMOVE, target=datanet, details={"user": user.pk})
