"""Wallets linked by SIWE, and the chain's records: the deployment, event cursors and indexed deposits."""

from django.db import models
from django.utils import timezone

from ..fields import AmountField
from .base import USER, AppendOnly
from .ledger import LedgerTransaction

# --- Wallets --------------------------------------------------------------------------------------------


class Wallet(models.Model):
    """A wallet linked by SIWE. An address belongs to one account forever (unique). A user's payout
    address at time t is their wallet with the latest `effective_at <= t`."""

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="wallets")
    address = models.CharField(max_length=42, unique=True)
    linked_at = models.DateTimeField(default=timezone.now)
    effective_at = models.DateTimeField()

    class Meta:
        ordering = ["-effective_at"]

    def __str__(self):
        return self.address


class WalletNonce(models.Model):
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=40, unique=True)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.nonce


# --- Chain ----------------------------------------------------------------------------------------------


class ChainDeployment(models.Model):
    """Token + distributor on one chain. Keyed by chain id and genesis hash: a restarted ephemeral chain
    has a new genesis, so it gets a new row (and the old one's epochs are reported as lost)."""

    chain_id = models.BigIntegerField()
    genesis_hash = models.CharField(max_length=66)
    token_address = models.CharField(max_length=42)
    distributor_address = models.CharField(max_length=42)
    treasury_address = models.CharField(max_length=42)
    deposit_address = models.CharField(max_length=42)
    deployed_at_block = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain_id", "genesis_hash"], name="rewards_deployment_chain")]

    def __str__(self):
        return f"chain {self.chain_id} distributor {self.distributor_address}"


class ChainCursor(models.Model):
    deployment = models.ForeignKey(ChainDeployment, on_delete=models.CASCADE, related_name="cursors")
    name = models.CharField(max_length=32)
    next_block = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="rewards_cursor_unique")]

    def __str__(self):
        return f"{self.name} @ {self.next_block}"


class ChainDeposit(AppendOnly):
    deployment = models.ForeignKey(ChainDeployment, on_delete=models.PROTECT, related_name="deposits")
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()
    sender = models.CharField(max_length=42)
    amount = AmountField()
    user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    transaction = models.OneToOneField(LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "tx_hash", "log_index"],
                                               name="rewards_deposit_once")]

    def __str__(self):
        return f"deposit {self.tx_hash}:{self.log_index}"
