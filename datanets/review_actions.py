"""Review writes that the queue's per-row controls need beyond `services.records_review`: giving a waiting
row another label before it is accepted. Keyword arguments, one transaction, an audit event in it.

Only rows waiting for review are relabelled: an accepted row may be in a published version, and what a
version holds never changes (training reads its rows' fields)."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.services import AuditAction, audit_record
from datanets import services

from .models import Datanet, Record, RecordStatus
from .selectors import datanet_permissions


def _clean_label(*, datanet: Datanet, label) -> str:
    label = str(label or "").strip()
    if label not in datanet.label_set:
        raise ValidationError({"label": f"Choose a label for this row: one of {', '.join(datanet.label_set)}."})
    return label


def record_relabel(*, datanet: Datanet, reviewer, record_id, label: str) -> bool:
    """Give a row waiting for review one of the Datanet's labels. Returns whether the label changed."""
    if not datanet_permissions(datanet=datanet, user=reviewer).can_curate:
        raise PermissionDenied("Only this Datanet's curators review rows.")
    if not datanet.label_set:
        raise ValidationError({"label": "This Datanet has no labels to choose from."})
    label = _clean_label(datanet=datanet, label=label)
    with transaction.atomic():
        record = Record.objects.select_for_update().filter(datanet=datanet, pk=int(record_id)).first()
        if record is None:
            raise ValidationError({"record": "No such row in this Datanet."})
        if record.status != RecordStatus.PENDING:
            raise ValidationError({"label": f"Only rows waiting for review are relabelled; this one is "
                                            f"{record.get_status_display().lower()}."})
        if record.label == label:
            return False
        previous = record.label
        record.label = label
        record.fields = {**record.fields, "label": label}
        record.save(update_fields=["label", "fields"])
        audit_record(actor=reviewer, action=AuditAction.RECORD_RELABEL, target=datanet,
                     details={"record": record.pk, "from": previous, "to": label})
    return True


def records_accept_relabelled(*, datanet: Datanet, reviewer, record_ids, labels: dict) -> int:
    """Accept rows, first giving those in `labels` ({row id: label}) the label the curator chose, in one
    transaction: a refused label accepts nothing. Returns how many rows were accepted."""
    ids = [int(pk) for pk in record_ids]
    with transaction.atomic():
        for record_id, label in labels.items():
            record_relabel(datanet=datanet, reviewer=reviewer, record_id=record_id, label=label)
        return services.records_review(datanet=datanet, reviewer=reviewer, record_ids=ids, decision="accept")
