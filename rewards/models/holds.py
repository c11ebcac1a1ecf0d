"""Harm holds: a contributor's earnings held for curator review, then released or confirmed (withheld)."""

from django.db import models
from django.utils import timezone

from ..fields import AmountField
from .base import USER

# --- Harm holds -----------------------------------------------------------------------------------------


class HoldState(models.TextChoices):
    HELD = "held", "held for review"
    RELEASED = "released", "released"
    CONFIRMED = "confirmed", "confirmed (withheld)"


class EarningsHold(models.Model):
    """A contributor's earnings held for curator review because the attribution engine flagged training
    rows of theirs as harming a model version's held-out evaluation (`holds.earnings_hold_for_harm`).

    While a hold is `held`, none of the user's unfrozen earnings go into an epoch (they stay in the ledger
    and keep accruing). `released`: they go into the next epoch as usual. `confirmed`: the user's unfrozen
    contributor shares from this model version are marked withheld (`SettlementShare.withheld_by`) and stay
    in the EARNINGS account, never frozen, never claimable; the amount is `withheld_amount` and the user
    sees it, with the decision note, on their rewards page. One open hold per (user, model version)."""

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="earnings_holds")
    model_version_hash = models.CharField(max_length=64)
    reason = models.TextField()
    evidence = models.JSONField(default=dict, blank=True,
                                help_text='{"rows": [row ids], "row_count": n, "harm": float, "threshold": float}')
    state = models.CharField(max_length=16, choices=HoldState.choices, default=HoldState.HELD, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, help_text="When the evidence last changed.")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decision_note = models.TextField(blank=True)
    withheld_amount = AmountField(default=0, help_text="Confirmed holds: the earnings withheld (base units).")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "model_version_hash"],
                                               condition=models.Q(state="held"), name="rewards_one_open_hold")]

    def __str__(self):
        return f"{self.get_state_display()}: user {self.user_id} on {self.model_version_hash[:12]}"

    @property
    def rows(self) -> list:
        return list((self.evidence or {}).get("rows", []))
