"""Rewards: the OPEN ledger (double entry, append-only), fee settlements, wallets, epochs and the chain.

Every amount is an `AmountField` (exact int base units, 18 decimals). Ledger rows are never updated or
deleted; balances are sums of entries (`rewards.ledger`). The cached figures of user *credit* accounts,
`LedgerAccount.balance` and `held`, exist so an inference's fee can be held (refused when short) with one
conditional row update instead of summing a payer's whole history; `ledger_check` proves `balance`
equals the sum of the account's entries and `held` the sum of the payer's `PendingFee` rows.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .amounts import format_open
from .fields import AmountField

USER = settings.AUTH_USER_MODEL


class AppendOnly(models.Model):
    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValidationError(f"{self._meta.verbose_name} rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(f"{self._meta.verbose_name} rows are append-only.")


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
