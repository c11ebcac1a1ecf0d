"""Review: curators accept or reject rows (`records_review`), staff moderate from the admin
(`records_moderate`), and a contribution is done once none of its rows waits; attribution's valuation flags
likely mislabeled rows for the queue (`records_flag_mislabeled`)."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record

from ..models import Contribution, ContributionState, Datanet, Record, RecordStatus
from ..selectors import datanet_permissions
from .constants import DB_BATCH


class Decision:
    ACCEPT = "accept"
    REJECT = "reject"
    CHOICES = (ACCEPT, REJECT)


def require_curator(*, datanet: Datanet, actor) -> None:
    if not datanet_permissions(datanet=datanet, user=actor).can_curate:
        raise PermissionDenied("Only this Datanet's curators and owner review rows.")


def records_review(*, datanet: Datanet, reviewer, record_ids, decision: str, reason: str = "") -> int:
    """Accept or reject rows (one or a filtered selection). Returns how many rows changed.

    Rejecting needs a reason, because the contributor sees it. Re-deciding an already decided row is
    allowed (curators fix mistakes) and audited like any other decision."""
    require_curator(datanet=datanet, actor=reviewer)
    return _records_decide(datanet=datanet, reviewer=reviewer, record_ids=record_ids, decision=decision, reason=reason)


def _records_decide(*, datanet: Datanet, reviewer, record_ids, decision: str, reason: str = "",
                    details=None) -> int:
    if decision not in Decision.CHOICES:
        raise ValidationError({"decision": "Decide 'accept' or 'reject'."})
    reason = (reason or "").strip()[:500]
    if decision == Decision.REJECT and not reason:
        raise ValidationError({"reason": "Say why the row is rejected; the contributor will see it."})
    status = RecordStatus.ACCEPTED if decision == Decision.ACCEPT else RecordStatus.REJECTED
    ids = [int(pk) for pk in record_ids]
    now = timezone.now()
    with transaction.atomic():
        records = Record.objects.select_for_update().filter(datanet=datanet, pk__in=ids).exclude(status=status)
        changed = list(records.values_list("pk", "contribution_id"))
        Record.objects.filter(pk__in=[pk for pk, _ in changed]).update(
            status=status, reason=reason if status == RecordStatus.REJECTED else "", reviewer=reviewer, reviewed_at=now
        )
        if changed:
            audit_record(
                actor=reviewer, target=datanet,
                action=AuditAction.RECORD_ACCEPT if decision == Decision.ACCEPT else AuditAction.RECORD_REJECT,
                details={"records": [pk for pk, _ in changed][:1000], "count": len(changed), "reason": reason,
                         **(details or {})},
            )
        for contribution_id in {cid for _, cid in changed}:
            _contribution_settle_review(contribution_id=contribution_id)
    return len(changed)


MODERATION_REASON = "Rejected by the platform's moderators."


def records_moderate(*, moderator, record_ids, decision: str, reason: str = "") -> int:
    """Staff moderation from the Django admin: accept or reject rows of any Datanet, as a curator would
    (same rules, same audit action, marked `moderated_in_admin`). Needs staff with the permission to change
    rows (`datanets.change_record`; superusers have it). Returns how many rows changed."""
    if not (getattr(moderator, "is_staff", False) and moderator.has_perm("datanets.change_record")):
        raise PermissionDenied("Moderating rows needs staff with the permission to change rows.")
    if decision == Decision.REJECT:
        reason = (reason or "").strip() or MODERATION_REASON
    by_datanet: dict[int, list[int]] = {}
    for pk, datanet_id in Record.objects.filter(pk__in=[int(pk) for pk in record_ids]).values_list("pk", "datanet_id"):
        by_datanet.setdefault(datanet_id, []).append(pk)
    changed = 0
    with transaction.atomic(durable=True):
        for datanet in Datanet.objects.filter(pk__in=by_datanet).order_by("pk"):
            changed += _records_decide(datanet=datanet, reviewer=moderator, record_ids=by_datanet[datanet.pk],
                                       decision=decision, reason=reason, details={"moderated_in_admin": True})
    return changed


def _contribution_settle_review(*, contribution_id: int) -> None:
    """A contribution is done when none of its rows wait for review; its contributor gets an email."""
    contribution = Contribution.objects.select_for_update().get(pk=contribution_id)
    pending = Record.objects.filter(contribution_id=contribution_id, status=RecordStatus.PENDING).exists()
    if contribution.state == ContributionState.IN_REVIEW and not pending:
        contribution.state = ContributionState.DONE
        contribution.reviewed_at = timezone.now()
        contribution.save(update_fields=["state", "reviewed_at"])
        from ..tasks import contribution_reviewed_email_task

        contribution_reviewed_email_task.delay_on_commit(contribution.pk)


def records_flag_mislabeled(*, scores: dict) -> int:
    """Mark rows that attribution's data valuation found likely mislabeled (`scores`: row uid `r<pk>` →
    validation-harm score) so they show in the review queue's `flag=mislabeled` filter. Returns how many."""
    by_pk = {int(uid[1:]): float(score) for uid, score in scores.items()
             if isinstance(uid, str) and uid.startswith("r") and uid[1:].isdigit()}
    # Not durable: a finished attribution build flags rows inside its own transaction.
    with transaction.atomic():
        records = list(Record.objects.select_for_update().filter(pk__in=by_pk))
        for record in records:
            record.quality = {**(record.quality or {}), "mislabel_score": round(by_pk[record.pk], 6)}
        Record.objects.bulk_update(records, ["quality"], batch_size=DB_BATCH)
        by_datanet: dict[int, list[int]] = {}
        for record in records:
            by_datanet.setdefault(record.datanet_id, []).append(record.pk)
        for datanet_id, pks in by_datanet.items():
            audit_record(actor=None, action=AuditAction.RECORD_FLAG_MISLABELED, object_type="datanets.datanet",
                         object_id=datanet_id, details={"records": pks[:1000], "count": len(pks)})
    return len(records)
