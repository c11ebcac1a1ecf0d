"""Fees: the fee policy and its versions, fees held per inference (`PendingFee`) and their booked splits
(`Settlement`, `SettlementShare`)."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from ..amounts import format_open
from ..fields import AmountField
from .base import USER, AppendOnly
from .ledger import LedgerTransaction

# --- Fee policy -----------------------------------------------------------------------------------------

class Fallback(models.TextChoices):
    TRAINING_DATA = "training_data", "the contributors of the model's training data, by its value"
    PROTOCOL = "protocol", "the protocol treasury"
    OWNER = "owner", "the model owner"


class FeePolicy(models.Model):
    """The current split (a singleton, pk=1), edited in the admin. Saving goes through
    `services.fee_policy_set`, which appends a `FeePolicyVersion`: settlements point at the version."""

    protocol_bps = models.PositiveIntegerField(default=1_000, help_text="Protocol treasury, basis points.")
    owner_bps = models.PositiveIntegerField(default=3_000, help_text="Model owner, basis points.")
    contributors_bps = models.PositiveIntegerField(default=6_000, help_text="Data contributors, basis points.")
    fallback = models.CharField(
        max_length=16, choices=Fallback.choices, default=Fallback.TRAINING_DATA,
        help_text="Who receives the contributors' share when an answer has no receipt at all (attribution failed): "
                  "by default the contributors of the rows that trained the model, pro rata to their value on its "
                  "evaluation split as recorded when its index was built (to rows when it never was). Never the "
                  "owner by default: the owner must not profit from attribution failing.",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "fee policy"
        verbose_name_plural = "fee policy"

    def __str__(self):
        return f"Fee policy v{self.version}: {self.protocol_bps}/{self.owner_bps}/{self.contributors_bps} bps"

    def clean(self):
        if self.protocol_bps + self.owner_bps + self.contributors_bps != 10_000:
            raise ValidationError("The three shares must add up to 10,000 basis points (100%).")


class FeePolicyVersion(AppendOnly):
    version = models.PositiveIntegerField(unique=True)
    protocol_bps = models.PositiveIntegerField()
    owner_bps = models.PositiveIntegerField()
    contributors_bps = models.PositiveIntegerField()
    fallback = models.CharField(max_length=16, choices=Fallback.choices)
    created_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self):
        return f"v{self.version} ({self.protocol_bps}/{self.owner_bps}/{self.contributors_bps} bps)"


# --- Settlements ----------------------------------------------------------------------------------------

class PendingFee(models.Model):
    """An inference's fee, recorded in the request's transaction while its amount is held on the payer's
    credit (`services.fee_record`), and settled in batches (`services.fee_settle_batch`), which deletes
    the row in the same transaction that books its `Settlement`. The split is computed at settlement from
    the stored inputs and the policy version in force when the fee was recorded."""

    # A queue whose rows live for seconds, read by inference id or in id order: the foreign keys get no
    # index of their own, so recording a fee (once per inference) maintains only two.
    inference_id = models.CharField(max_length=120, unique=True)
    payer = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+", db_index=False)
    model_owner = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+", db_index=False)
    model_version_hash = models.CharField(max_length=80)
    receipt_id = models.CharField(max_length=120, blank=True)
    fee = AmountField()
    policy = models.ForeignKey(FeePolicyVersion, on_delete=models.PROTECT, related_name="+", db_index=False)
    contributor_shares = models.JSONField(default=dict, blank=True, help_text="{user id: ppm}, summing to 10**6.")
    contributor_rows = models.JSONField(default=dict, blank=True, help_text="{user id: [row ids]}")
    promotional = AmountField(default=0, help_text="The part of the fee paid with promotional credit: split to nobody.")
    awaiting_receipt = models.BooleanField(
        default=False, help_text="Held when the answer was given; its receipt (and so its split) is still being "
                                 "computed by an attribution worker. Not settled until it arrives.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"pending fee {self.inference_id}"


class Settlement(AppendOnly):
    """One inference's fee, split and booked; `inference_id` is its idempotency key. Fees are booked in
    batches: the ledger transaction holds the batch's entries per account, and `ledger_check` proves
    they equal the sum of its settlements' splits. `created_at` is when the fee was recorded."""

    inference_id = models.CharField(max_length=120, unique=True)
    payer = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    model_owner = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    model_version_hash = models.CharField(max_length=80, db_index=True)
    receipt_id = models.CharField(max_length=120, blank=True)
    fee = AmountField()
    policy = models.ForeignKey(FeePolicyVersion, on_delete=models.PROTECT, related_name="settlements")
    protocol_amount = AmountField()
    owner_amount = AmountField()
    contributors_amount = AmountField(help_text="After the fallback: 0 when the receipt named nobody.")
    fallback_used = models.BooleanField(default=False)
    promotional_amount = AmountField(default=0, help_text="Paid with promotional credit and booked back to the grants "
                                                          "account; the split covers the rest of the fee.")
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="settlements")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"settlement {self.inference_id}"


class ShareRole(models.TextChoices):
    OWNER = "owner"
    CONTRIBUTOR = "contributor"


class SettlementShare(models.Model):
    """What one user earned from one settlement; `epoch` is set when an epoch close freezes it, and
    `withheld_by` when a confirmed harm hold withholds it (the only fields ever updated, each once)."""

    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="shares")
    # No index of its own: the (user, epoch) index below serves every lookup by user, and each index is
    # maintained for every share a settlement batch inserts.
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="reward_shares", db_index=False)
    role = models.CharField(max_length=16, choices=ShareRole.choices)
    ppm = models.PositiveIntegerField(default=0, help_text="Contributor share in parts per million.")
    amount = AmountField()
    rows = models.JSONField(default=list, blank=True, help_text="The receipt's top row ids for this contributor.")
    epoch = models.ForeignKey("Epoch", null=True, blank=True, on_delete=models.PROTECT, related_name="shares")
    # Set (once, on an unfrozen share) when a curator confirms an `EarningsHold`: the share is never frozen,
    # its amount stays in the EARNINGS account, unclaimable. No index: the settlement batch inserts shares
    # and only a confirmation and the freeze read this column.
    withheld_by = models.ForeignKey("EarningsHold", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="withheld_shares", db_index=False)

    class Meta:
        indexes = [models.Index(fields=["user", "epoch"])]

    def __str__(self):
        return f"{self.user_id} {self.role} {format_open(self.amount)} OPEN"
