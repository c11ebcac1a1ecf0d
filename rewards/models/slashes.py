"""Slashed stakes: a slash booked as its Datanet's honest contributors' earnings, their shares, and the
release of the slashed OPEN from the stakes contract's pool."""

from django.db import models
from django.utils import timezone

from ..amounts import format_open
from ..fields import AmountField
from .base import USER, AppendOnly
from .ledger import LedgerTransaction

# --- Slashed stakes -------------------------------------------------------------------------------------

class SlashBooking(AppendOnly):
    """A contributor's stake slashed on chain into a Datanet's reward pool (governance's slash rule), booked once
    as earnings of that Datanet's honest contributors: from the SLASHED_STAKES system account to their EARNINGS,
    pro rata to their accepted rows in the Datanet's latest version, the slashed contributor excluded
    (`services.slash_book`). `key` is the slash's evidence hash, the id the staking contract takes once, so each
    slash is booked at most once however often and by whomever the booking runs."""

    key = models.CharField(max_length=66, unique=True, help_text="The slash's evidence hash (its on-chain id).")
    datanet_id = models.PositiveBigIntegerField(db_index=True, help_text="The Datanet (its on-chain id, the pk).")
    datanet_version = models.PositiveIntegerField(help_text="The version whose accepted rows weighed the shares.")
    slashed_user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = AmountField(help_text="OPEN the slash moved into the Datanet's pool (base units).")
    slash_tx_hash = models.CharField(max_length=66, blank=True)
    transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="slash_booking")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"slash {self.key[:12]}… on datanet {self.datanet_id}: {format_open(self.amount)} OPEN"


class ReleaseState(models.TextChoices):
    PENDING = "pending", "waiting to be sent"
    DONE = "done", "released on chain"
    FAILED = "failed", "failed; the next run asks the chain, then retries"


class SlashRelease(models.Model):
    """A booked slash's OPEN paid out of the Datanet's pool in the stakes contract (`releasePool`) to the treasury
    that funds epoch payouts, so the epoch paying its `SlashShare`s is funded by the slashed OPEN, not by the
    treasury's own (`services.slash_releases_send`). Once per booking (`key`, the evidence hash).

    `releasePool` takes no id the contract could refuse twice, so each release carries its place in its pool's
    order instead: `released_through` is what that pool has paid out in all once this release is done. A run
    first adds up the pool's `PoolReleased` events; a release whose `released_through` is already reached is done
    (an earlier try landed though its answer was lost) and nothing is sent again."""

    booking = models.OneToOneField(SlashBooking, on_delete=models.PROTECT, related_name="release")
    key = models.CharField(max_length=66, unique=True, help_text="The slash's evidence hash (its booking's key).")
    staking_address = models.CharField(max_length=42, db_index=True, help_text="The stakes contract holding the pool.")
    datanet_id = models.PositiveBigIntegerField(help_text="The pool (the Datanet's on-chain id, its pk).")
    recipient = models.CharField(max_length=42, help_text="The treasury the epoch close funds the distributor from.")
    amount = AmountField(help_text="The booked slash's amount (base units).")
    released_through = AmountField(help_text="What the pool has released in all once this release is done.")
    state = models.CharField(max_length=16, choices=ReleaseState.choices, default=ReleaseState.PENDING)
    tx_hash = models.CharField(max_length=66, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Sends tried (a lost answer counts).")
    error = models.TextField(blank=True)
    pool_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="Kept on a pool's first release: until when one run holds the pool to send "
                                         "its releases (two runs side by side would both see the same amount missing).")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["staking_address", "datanet_id", "released_through"]
        constraints = [models.UniqueConstraint(fields=["staking_address", "datanet_id", "released_through"],
                                               name="rewards_slash_release_order")]

    def __str__(self):
        return f"release of slash {self.key[:12]}… ({self.state}): {format_open(self.amount)} OPEN"


class SlashShare(models.Model):
    """One honest contributor's part of a `SlashBooking`, paid like a fee share: `epoch` is set when an epoch
    close freezes it (the only field ever updated, once)."""

    booking = models.ForeignKey(SlashBooking, on_delete=models.PROTECT, related_name="shares")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="slash_shares", db_index=False)
    rows = models.PositiveIntegerField(help_text="Their accepted rows in the version: the weight.")
    amount = AmountField()
    epoch = models.ForeignKey("Epoch", null=True, blank=True, on_delete=models.PROTECT, related_name="slash_shares")

    class Meta:
        indexes = [models.Index(fields=["user", "epoch"])]
        constraints = [models.UniqueConstraint(fields=["booking", "user"], name="rewards_slash_share_once")]

    def __str__(self):
        return f"{self.user_id} {format_open(self.amount)} OPEN of slash {self.booking_id}"
