"""Writes for harm holds: a contributor whose training rows harm a model version's held-out evaluation
has their pending earnings held for curator review (issue #16). Keyword arguments, one
`transaction.atomic` per change, an audit row in the same transaction.

* `earnings_hold_for_harm(...)`: called by attribution when a valuation flags rows. Opens a hold, or
  updates the evidence of the open one for (user, model version); idempotent.
* `earnings_hold_release(...)`: the curator finds no harm; the held earnings go into the next epoch.
* `earnings_hold_confirm(...)`: the curator confirms the harm; the user's unfrozen contributor earnings
  from that model version are withheld (they stay in the EARNINGS account, never frozen, never
  claimable, shown to the user with the note); later earnings flow as usual unless flagged again.

What a hold does to an epoch lives in `services.epochs._epoch_freeze`: a user with any open hold gets no new
allocation, so their cumulative Merkle amount stays where it was (monotonic), and the ledger still checks
(unfrozen earnings equal unfrozen shares, whether held, withheld or accruing). Who may decide is the
caller's check: the admin needs `rewards.change_earningshold`.
"""

import math

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record

from .models import EarningsHold, HoldState, SettlementShare, ShareRole

MAX_EVIDENCE_ROWS = 500  # row ids kept in the evidence (the count is kept too)


def _hold_input(*, user_id, model_version_hash, rows, harm, threshold, reason) -> tuple:
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise ValidationError({"user_id": f"Give the contributor's user id as an int, not {user_id!r}."})
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise ValidationError({"user_id": f"No user with id {user_id}: no earnings hold was recorded."})
    model_version_hash = str(model_version_hash or "").strip()
    if not model_version_hash or len(model_version_hash) > 64:
        raise ValidationError({"model_version_hash": "Give the model version hash (at most 64 characters)."})
    if isinstance(rows, str | bytes) or not isinstance(rows, list | tuple):
        raise ValidationError({"rows": "Give the flagged row ids as a list."})
    row_ids = sorted({str(row).strip() for row in rows if str(row).strip()})
    if not row_ids:
        raise ValidationError({"rows": "Name at least one flagged row: a hold needs evidence."})
    numbers = {}
    for name, value in (("harm", harm), ("threshold", threshold)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationError({name: f"{name} must be a finite number, got {value!r}."})
        numbers[name] = float(value)
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the earnings are held; the contributor reads it."})
    evidence = {"rows": row_ids[:MAX_EVIDENCE_ROWS], "row_count": len(row_ids), **numbers}
    return model_version_hash, evidence, reason


def earnings_hold_for_harm(*, user_id: int, model_version_hash: str, rows: list[str], harm: float,
                           threshold: float, reason: str) -> EarningsHold:
    """Hold `user_id`'s pending earnings because `rows` of theirs harm `model_version_hash` (net harm
    `harm` against the flagging `threshold`). Returns the open hold for (user, model version).

    Idempotent: with a hold already open, its reason and evidence are replaced by these (audited only
    when they changed; nothing is written when they did not). A curator's release covers the rows it
    reviewed: flagging only rows a released hold on this model version already named returns that
    released hold and opens nothing. A confirmed hold does not: earnings from rows confirmed harmful
    that accrue after the confirmation are held again. Raises `ValidationError` for bad input
    (unknown user, no rows, a non-finite number, an empty reason)."""
    model_version_hash, evidence, reason = _hold_input(
        user_id=user_id, model_version_hash=model_version_hash, rows=rows, harm=harm, threshold=threshold,
        reason=reason)
    for _ in range(2):  # a second round only when a concurrent caller opened the same hold first
        try:
            with transaction.atomic():
                hold = (EarningsHold.objects.select_for_update()
                        .filter(user_id=user_id, model_version_hash=model_version_hash, state=HoldState.HELD).first())
                if hold is not None:
                    if hold.evidence == evidence and hold.reason == reason:
                        return hold
                    previous = hold.evidence
                    hold.evidence, hold.reason, hold.updated_at = evidence, reason, timezone.now()
                    hold.save(update_fields=["evidence", "reason", "updated_at"])
                    audit_record(actor=None, action=AuditAction.REWARDS_EARNINGS_HOLD_UPDATE, target=hold,
                                 details={"user": user_id, "model_version_hash": model_version_hash,
                                          "evidence": evidence, "previous": previous, "reason": reason})
                    return hold
                reviewed = _released_covering(user_id=user_id, model_version_hash=model_version_hash,
                                              rows=evidence["rows"] if evidence["row_count"] <= MAX_EVIDENCE_ROWS
                                              else None)
                if reviewed is not None:
                    return reviewed
                hold = EarningsHold.objects.create(user_id=user_id, model_version_hash=model_version_hash,
                                                   reason=reason, evidence=evidence)
                audit_record(actor=None, action=AuditAction.REWARDS_EARNINGS_HOLD, target=hold,
                             details={"user": user_id, "model_version_hash": model_version_hash,
                                      "evidence": evidence, "reason": reason})
                return hold
        except IntegrityError:
            continue
    raise ValidationError("The earnings hold changed concurrently; try again.")


def _released_covering(*, user_id: int, model_version_hash: str, rows: list[str] | None) -> EarningsHold | None:
    """The latest released hold on this model version whose reviewed rows include all of `rows`."""
    if rows is None:
        return None
    wanted = set(rows)
    for hold in EarningsHold.objects.filter(user_id=user_id, model_version_hash=model_version_hash,
                                            state=HoldState.RELEASED).order_by("-decided_at", "-id"):
        if hold.evidence.get("row_count", 0) <= MAX_EVIDENCE_ROWS and wanted <= set(hold.rows):
            return hold
    return None


def _decide(*, hold: EarningsHold, actor, note: str, to_state: str) -> EarningsHold:
    if getattr(actor, "pk", None) is None:
        raise ValidationError({"actor": "A hold is decided by a signed-in curator or staff member."})
    locked = (EarningsHold.objects.select_for_update(of=("self",)).select_related("decided_by")
              .filter(pk=hold.pk).first())
    if locked is None:
        raise ValidationError(f"Earnings hold {hold.pk} does not exist.")
    if locked.state != HoldState.HELD:
        by = locked.decided_by.get_username() if locked.decided_by else "someone"
        when = f"{locked.decided_at:%Y-%m-%d %H:%M} UTC" if locked.decided_at else "earlier"
        raise ValidationError(f"This hold was already {locked.state} by {by} on {when}; nothing was changed.")
    locked.state, locked.decided_at, locked.decided_by = to_state, timezone.now(), actor
    locked.decision_note = str(note or "").strip()
    return locked


def earnings_hold_release(*, hold: EarningsHold, actor, note: str = "") -> EarningsHold:
    """The curator finds no harm: the hold closes and the user's earnings go into the next epoch (unless
    another hold of theirs is still open). Raises `ValidationError` when the hold was already decided
    (nothing changes)."""
    with transaction.atomic():
        hold = _decide(hold=hold, actor=actor, note=note, to_state=HoldState.RELEASED)
        hold.save(update_fields=["state", "decided_at", "decided_by", "decision_note"])
        audit_record(actor=actor, action=AuditAction.REWARDS_EARNINGS_HOLD_RELEASE, target=hold,
                     details={"user": hold.user_id, "model_version_hash": hold.model_version_hash,
                              "note": hold.decision_note})
    return hold


def earnings_hold_confirm(*, hold: EarningsHold, actor, note: str = "") -> EarningsHold:
    """The curator confirms the harm: the user's unfrozen contributor shares from this model version are
    withheld (`SettlementShare.withheld_by`): never frozen into an epoch, never claimable, their amount
    (`withheld_amount`) left in the EARNINGS account and shown to the user with `note`. Their other
    earnings go into the next epoch (unless another hold is open). Raises `ValidationError` when the
    hold was already decided (nothing changes)."""
    with transaction.atomic():
        hold = _decide(hold=hold, actor=actor, note=note, to_state=HoldState.CONFIRMED)
        shares = SettlementShare.objects.filter(
            user_id=hold.user_id, role=ShareRole.CONTRIBUTOR, epoch__isnull=True, withheld_by__isnull=True,
            settlement__model_version_hash=hold.model_version_hash)
        rows = list(shares.select_for_update(of=("self",)).values_list("id", "amount"))
        ids = [pk for pk, _ in rows]
        hold.withheld_amount = sum(int(amount) for _, amount in rows)
        for start in range(0, len(ids), 500):
            SettlementShare.objects.filter(id__in=ids[start:start + 500], epoch__isnull=True).update(withheld_by=hold)
        hold.save(update_fields=["state", "decided_at", "decided_by", "decision_note", "withheld_amount"])
        audit_record(actor=actor, action=AuditAction.REWARDS_EARNINGS_HOLD_CONFIRM, target=hold,
                     details={"user": hold.user_id, "model_version_hash": hold.model_version_hash,
                              "note": hold.decision_note, "withheld": str(hold.withheld_amount),
                              "shares": len(ids)})
    return hold
