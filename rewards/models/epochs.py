"""Payout epochs and claims: the epoch close's state, what it froze per user, its Merkle leaves, indexed
`Claimed` events, "Claim for me" relays, and disagreements with the chain found by reconciliation."""

from django.db import models
from django.utils import timezone

from ..amounts import format_open
from ..fields import AmountField
from .base import USER, AppendOnly
from .chain import ChainDeployment
from .ledger import LedgerTransaction

# --- Epochs -------------------------------------------------------------------------------------------


class EpochState(models.TextChoices):
    FROZEN = "frozen"
    TREE_BUILT = "tree_built"
    FUNDED = "funded"
    ROOT_POSTED = "root_posted"
    RELAYED = "relayed"
    CLOSED = "closed"


EPOCH_ORDER = [state.value for state in EpochState]


class Epoch(models.Model):
    """A payout epoch, closed by a persisted state machine (see `services.epoch_close`)."""

    number = models.PositiveIntegerField(unique=True)
    deployment = models.ForeignKey(ChainDeployment, on_delete=models.PROTECT, related_name="epochs")
    state = models.CharField(max_length=16, choices=EpochState.choices, default=EpochState.FROZEN)
    frozen_at = models.DateTimeField(default=timezone.now)
    increase = AmountField(default=0, help_text="Frozen this epoch: what the distributor must receive.")
    total_cumulative = AmountField(default=0)
    root = models.CharField(max_length=66, blank=True)
    tree_hash = models.CharField(max_length=66, blank=True)
    tree_dump = models.TextField(blank=True)
    funding_tx_hash = models.CharField(max_length=66, blank=True)
    funded_amount = AmountField(default=0)
    root_tx_hash = models.CharField(max_length=66, blank=True)
    relay_tx_hash = models.CharField(max_length=66, blank=True)
    relayed_accounts = models.PositiveIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Runs of the close at its current step.")
    lease_owner = models.CharField(max_length=40, blank=True, help_text="Who is running the close now.")
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self):
        return f"epoch {self.number} ({self.state})"

    def reached(self, state: str) -> bool:
        return EPOCH_ORDER.index(self.state) >= EPOCH_ORDER.index(state)


class PayoutAllocation(AppendOnly):
    """What an epoch froze for one user, and the address it is paid to."""

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="allocations")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="payout_allocations")
    address = models.CharField(max_length=42, db_index=True)
    amount = AmountField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["epoch", "user"], name="rewards_allocation_once")]

    def __str__(self):
        return f"epoch {self.epoch_id} user {self.user_id}: {format_open(self.amount)} OPEN"


class PayoutLeaf(AppendOnly):
    """One leaf of an epoch's tree with its proof (hex), served to claimants."""

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="leaves")
    address = models.CharField(max_length=42)
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    cumulative_amount = AmountField()
    proof = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["epoch", "address"], name="rewards_leaf_once")]

    def __str__(self):
        return f"{self.address} {format_open(self.cumulative_amount)} OPEN"


class ChainClaim(AppendOnly):
    """A `Claimed` event, booked once (pending → paid out)."""

    deployment = models.ForeignKey(ChainDeployment, on_delete=models.PROTECT, related_name="claims")
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()
    address = models.CharField(max_length=42, db_index=True)
    amount = AmountField()
    cumulative = AmountField()
    user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    transaction = models.OneToOneField(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "tx_hash", "log_index"],
                                               name="rewards_claim_once")]

    def __str__(self):
        return f"claim {self.tx_hash}:{self.log_index}"


class ReconciliationIssue(models.Model):
    """A disagreement between the database and the chain. Reported, never patched: a person resolves it."""

    kind = models.CharField(max_length=40, db_index=True)
    fingerprint = models.CharField(max_length=200, db_index=True, help_text="Same open issue is not repeated.")
    detail = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    deployment = models.ForeignKey(ChainDeployment, null=True, blank=True, on_delete=models.SET_NULL)
    epoch = models.ForeignKey(Epoch, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind}: {self.detail[:80]}"


class RelayState(models.TextChoices):
    QUEUED = "queued", "queued"
    DONE = "done", "relayed"
    FAILED = "failed", "failed"


class ClaimRelay(models.Model):
    """A "Claim for me" request: written (queued) by the page, sent by the `chain` queue's worker
    (`services.claim_relay_run`), its outcome read back by /rewards/claim/. At most one is queued per user."""

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="claim_relays")
    state = models.CharField(max_length=16, choices=RelayState.choices, default=RelayState.QUEUED)
    amount = AmountField(help_text="Claimable when it was asked for (base units).")
    relayed_accounts = models.PositiveIntegerField(default=0)
    tx_hash = models.CharField(max_length=66, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["user", "requested_at"])]
        constraints = [models.UniqueConstraint(fields=["user"], condition=models.Q(state="queued"),
                                               name="rewards_one_queued_relay")]

    def __str__(self):
        return f"claim relay {self.pk} for user {self.user_id}: {self.state}"
