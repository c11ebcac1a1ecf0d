"""The double-entry ledger (accounts, transactions, entries) and the credit it books: admin grants and what
is left of a user's promotional credit."""

from django.db import models
from django.utils import timezone

from ..amounts import format_open
from ..fields import AmountField
from .base import USER, AppendOnly

# --- Ledger ---------------------------------------------------------------------------------------------

class AccountKind(models.TextChoices):
    CREDIT = "credit", "user credit"
    EARNINGS = "earnings", "user earnings"
    OWNER_EARNINGS = "owner_earnings", "model owner earnings"
    PENDING = "pending", "pending payouts"
    PAID_OUT = "paid_out", "paid out"
    TREASURY = "treasury", "protocol treasury"
    DEPOSITS = "deposits", "on-chain deposits"
    GRANTS = "grants", "admin grants"
    SLASHED_STAKES = "slashed_stakes", "slashed stakes"


USER_KINDS = (AccountKind.CREDIT, AccountKind.EARNINGS, AccountKind.OWNER_EARNINGS, AccountKind.PENDING,
              AccountKind.PAID_OUT)


class LedgerAccount(models.Model):
    """One account per (kind, user) for user kinds, one per kind for system accounts; `key` is
    `"credit:42"` or `"treasury"` so a unique index covers both."""

    key = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=20, choices=AccountKind.choices)
    user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts")
    balance = AmountField(default=0, help_text="Cached sum of entries; kept for credit accounts only.")
    held = AmountField(default=0, help_text="Credit accounts: fees recorded but not settled yet (the payer's "
                                            "pending fees). Spendable credit is balance - held.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "user"])]

    def __str__(self):
        return self.key


class LedgerTransaction(AppendOnly):
    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        GRANT = "grant"
        FEE = "fee"
        FREEZE = "freeze"
        CLAIM = "claim"
        SLASH = "slash"

    idempotency_key = models.CharField(max_length=160, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.idempotency_key


class LedgerEntry(AppendOnly):
    """A signed movement on one account; the entries of a transaction sum to zero."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = AmountField()

    class Meta:
        verbose_name_plural = "ledger entries"

    def __str__(self):
        return f"{self.account.key} {'+' if self.amount >= 0 else ''}{format_open(self.amount)} OPEN"


# --- Credit ---------------------------------------------------------------------------------------------

class CreditGrant(AppendOnly):
    """An admin's grant of OPEN credit (adding one in the admin calls `services.credit_grant`)."""

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    amount = AmountField(help_text="Base units (1 OPEN = 10**18).")
    reason = models.CharField(max_length=200)
    granted_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, null=True, blank=True)
    promotional = models.BooleanField(
        default=False, help_text="Promotional credit (every starter grant): fees paid with it earn nobody; their "
                                 "whole amount goes back to the grants account. An account costs nothing to make, so "
                                 "credit given per account must never become anyone's earnings.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"grant of {format_open(self.amount)} OPEN to {self.user}"


class PromotionalCredit(models.Model):
    """How much of a user's credit is still promotional (`CreditGrant.promotional`). Fees spend it first
    (`services.fee_record`, under this row's lock); what a fee took is `PendingFee.promotional` and then
    `Settlement.promotional_amount`, booked back to the grants account instead of being split."""

    user = models.OneToOneField(USER, on_delete=models.PROTECT, primary_key=True, related_name="+")
    remaining = AmountField(default=0)

    def __str__(self):
        return f"{format_open(self.remaining)} OPEN promotional credit of {self.user}"
