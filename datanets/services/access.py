"""Training access: asking to train on a Datanet whose owner approves who may, and the owner's answer."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from notifications import notify

from ..models import AccessState, Datanet, TrainingAccessRequest
from ..selectors import datanet_permissions


def access_request_create(*, datanet: Datanet, requester, message: str = "") -> TrainingAccessRequest:
    perms = datanet_permissions(datanet=datanet, user=requester)
    if not perms.can_view:
        raise PermissionDenied("No such Datanet.")
    if perms.can_train:
        raise ValidationError("You can already train on this Datanet; no request is needed.")
    with transaction.atomic(durable=True):
        request, created = TrainingAccessRequest.objects.get_or_create(
            datanet=datanet, requester=requester, defaults={"message": (message or "")[:2000]}
        )
        if not created and request.state == AccessState.REFUSED:
            raise ValidationError("The owner refused an earlier request. Contact them before asking again.")
        if created:
            audit_record(actor=requester, action=AuditAction.DATANET_ACCESS_REQUEST, target=request, details={"datanet": datanet.slug})
    return request


def access_request_decide(*, access_request: TrainingAccessRequest, actor, approve: bool) -> TrainingAccessRequest:
    if not datanet_permissions(datanet=access_request.datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner decides on training access.")
    with transaction.atomic(durable=True):
        request = TrainingAccessRequest.objects.select_for_update().get(pk=access_request.pk)
        request.state = AccessState.APPROVED if approve else AccessState.REFUSED
        request.decided_by = actor
        request.decided_at = timezone.now()
        request.save(update_fields=["state", "decided_by", "decided_at"])
        audit_record(actor=actor, action=AuditAction.DATANET_ACCESS_APPROVED if approve else AuditAction.DATANET_ACCESS_REFUSED,
                     target=request, details={"requester": request.requester_id})
        notify.event(kind="access_request.decided", object_id=request.pk)
    return request
