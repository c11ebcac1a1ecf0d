"""Governance state mirrored from the chain. The chain is the source of truth: proposals, votes, parameter
changes and stake movements are written only by the indexers (`services.governance_index`,
`services.stakes_index`), each event once by (transaction hash, log index). `WalletAction` (a transaction
asked for from a page), `DatanetStakeRequirement` and `StakeSlash` (the platform's decision and its
evidence) are the platform's own records."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from rewards.fields import AmountField


class GovernanceDeployment(models.Model):
    """vOPEN, timelock, governor and parameter registry on one chain, keyed like rewards' deployment by
    chain id and genesis hash (a restarted development chain gets a new row)."""

    chain_id = models.BigIntegerField()
    genesis_hash = models.CharField(max_length=66)
    token_address = models.CharField(max_length=42, help_text="OPEN, the token vOPEN wraps.")
    votes_address = models.CharField(max_length=42)
    timelock_address = models.CharField(max_length=42)
    governor_address = models.CharField(max_length=42)
    parameters_address = models.CharField(max_length=42)
    deployed_at_block = models.PositiveBigIntegerField(default=0)
    staking_address = models.CharField(max_length=42, blank=True, help_text="ContributorStakes; empty until deployed.")
    staking_deployed_at_block = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain_id", "genesis_hash"], name="governance_deployment_chain")]

    def __str__(self):
        return f"chain {self.chain_id} governor {self.governor_address}"


class GovernanceCursor(models.Model):
    deployment = models.ForeignKey(GovernanceDeployment, on_delete=models.CASCADE, related_name="cursors")
    name = models.CharField(max_length=32)
    next_block = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="governance_cursor_unique")]

    def __str__(self):
        return f"{self.name} @ {self.next_block}"


class ProposalState(models.TextChoices):
    """IGovernor.ProposalState, as the governor reports it."""

    PENDING = "pending"
    ACTIVE = "active"
    CANCELED = "canceled"
    DEFEATED = "defeated"
    SUCCEEDED = "succeeded"
    QUEUED = "queued"
    EXPIRED = "expired"
    EXECUTED = "executed"


class ChangeKind(models.TextChoices):
    FEE_SPLIT = "fee_split", "fee split"
    EPOCH_LENGTH = "epoch_length", "epoch length"
    SHARE_POLICY = "share_policy", "attribution share policy"
    OTHER = "other", "other calls"


class Proposal(models.Model):
    deployment = models.ForeignKey(GovernanceDeployment, on_delete=models.PROTECT, related_name="proposals")
    proposal_id = models.CharField(max_length=78, help_text="The governor's uint256 proposal id, in decimal.")
    proposer = models.CharField(max_length=42)
    description = models.TextField()
    targets = models.JSONField(default=list)
    values = models.JSONField(default=list, help_text="Wei per call, as decimal strings.")
    calldatas = models.JSONField(default=list, help_text="0x-hex call data per call.")
    change_kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    protocol_bps = models.PositiveIntegerField(null=True, blank=True)
    owner_bps = models.PositiveIntegerField(null=True, blank=True)
    contributors_bps = models.PositiveIntegerField(null=True, blank=True)
    change = models.JSONField(default=dict, blank=True,
                              help_text="What the registry call sets, decoded: the split's bps, "
                                        '{"epoch_length_s"} or {"fdr_bps", "fdr", "top_groups"}.')
    vote_start = models.PositiveBigIntegerField(help_text="Snapshot block: voting power is read here.")
    vote_end = models.PositiveBigIntegerField(help_text="Last block of the vote.")
    state = models.CharField(max_length=16, choices=ProposalState.choices, default=ProposalState.PENDING)
    votes_for = AmountField(default=0)
    votes_against = AmountField(default=0)
    votes_abstain = AmountField(default=0)
    eta = models.DateTimeField(null=True, blank=True, help_text="When the timelock lets it execute.")
    created_tx_hash = models.CharField(max_length=66)
    created_block = models.PositiveBigIntegerField()
    executed_tx_hash = models.CharField(max_length=66, blank=True)
    state_checked_block = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_block", "-id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "proposal_id"], name="governance_proposal_once")]

    def __str__(self):
        return f"proposal {self.proposal_id[:12]}… ({self.state})"

    @property
    def fee_split(self) -> dict | None:
        if self.change_kind != ChangeKind.FEE_SPLIT:
            return None
        return {"protocol_bps": self.protocol_bps, "owner_bps": self.owner_bps,
                "contributors_bps": self.contributors_bps}

    @property
    def change_words(self) -> str:
        """The exact change in words ("Epoch length: 1 day"); empty for a fee split (shown as a table)."""
        from rewards.chain.parameters import SharePolicyValues, duration_words

        if self.change_kind == ChangeKind.EPOCH_LENGTH:
            return f"Epoch length: {duration_words(int(self.change['epoch_length_s']))}"
        if self.change_kind == ChangeKind.SHARE_POLICY:
            policy = SharePolicyValues(int(self.change["fdr_bps"]), int(self.change["top_groups"]))
            return (f"Share policy: false-discovery rate {policy.as_dict()['fdr']}, at most {policy.top_groups:,} "
                    "credit groups paid per answer")
        return ""


class VoteSupport(models.TextChoices):
    AGAINST = "against"
    FOR = "for"
    ABSTAIN = "abstain"


class Vote(models.Model):
    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="votes")
    voter = models.CharField(max_length=42)
    support = models.CharField(max_length=8, choices=VoteSupport.choices)
    weight = AmountField()
    reason = models.TextField(blank=True)
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [models.UniqueConstraint(fields=["proposal", "tx_hash", "log_index"], name="governance_vote_once")]

    def __str__(self):
        return f"{self.voter} {self.support} {self.proposal_id}"


class ParameterChange(models.Model):
    """A `FeeSplitChanged` of the registry, and the rewards fee-policy version it became (none when the
    database already had that split, e.g. the registry's initial split)."""

    deployment = models.ForeignKey(GovernanceDeployment, on_delete=models.PROTECT, related_name="changes")
    registry_version = models.PositiveIntegerField()
    protocol_bps = models.PositiveIntegerField()
    owner_bps = models.PositiveIntegerField()
    contributors_bps = models.PositiveIntegerField()
    proposal = models.ForeignKey(Proposal, null=True, blank=True, on_delete=models.PROTECT, related_name="changes")
    fee_policy_version = models.PositiveIntegerField(null=True, blank=True,
                                                     help_text="rewards FeePolicyVersion.version it created.")
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-block_number", "-log_index"]
        constraints = [models.UniqueConstraint(fields=["deployment", "tx_hash", "log_index"],
                                               name="governance_change_once")]

    def __str__(self):
        return f"fee split v{self.registry_version}: {self.protocol_bps}/{self.owner_bps}/{self.contributors_bps}"


class GovernedParameter(models.TextChoices):
    EPOCH_LENGTH = "epoch_length", "epoch length"
    SHARE_POLICY = "share_policy", "attribution share policy"


class GovernedValue(models.Model):
    """A platform parameter the registry set (`EpochLengthChanged`, `SharePolicyChanged`), as the indexer
    mirrored it, linked to the executed proposal that set it. The latest row of the latest deployment is in
    force from its execution on; without one the setting applies (`selectors.epoch_length_s`,
    `selectors.share_policy_values`)."""

    deployment = models.ForeignKey(GovernanceDeployment, on_delete=models.PROTECT, related_name="governed_values")
    parameter = models.CharField(max_length=16, choices=GovernedParameter.choices)
    registry_version = models.PositiveIntegerField(help_text="The registry's version counter of this parameter.")
    epoch_length_s = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds between epoch closes.")
    attribution_fdr_bps = models.PositiveIntegerField(null=True, blank=True,
                                                      help_text="False-discovery rate in bps (1,000 = 0.1).")
    attribution_top_groups = models.PositiveIntegerField(null=True, blank=True,
                                                         help_text="Most credit groups paid per answer.")
    proposal = models.ForeignKey(Proposal, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="governed_values")
    effective_at = models.DateTimeField(help_text="The time of the block that executed it.")
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-block_number", "-log_index"]
        constraints = [models.UniqueConstraint(fields=["deployment", "tx_hash", "log_index"],
                                               name="governance_value_once")]
        indexes = [models.Index(fields=["deployment", "parameter", "block_number"])]

    def __str__(self):
        if self.parameter == GovernedParameter.EPOCH_LENGTH:
            return f"epoch length v{self.registry_version}: {self.epoch_length_s} s"
        return (f"share policy v{self.registry_version}: fdr {self.attribution_fdr_bps} bps, "
                f"{self.attribution_top_groups} groups")


# --- Transactions asked for from the pages -------------------------------------------------------------

class ActionKind(models.TextChoices):
    DELEGATE = "delegate", "wrap OPEN and delegate"
    PROPOSE = "propose"
    VOTE = "vote"
    QUEUE = "queue"
    EXECUTE = "execute"
    STAKE = "stake"
    UNSTAKE = "unstake", "ask to unstake"
    WITHDRAW = "withdraw"


class ActionState(models.TextChoices):
    PREPARED = "prepared", "waiting for your wallet"
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class WalletAction(models.Model):
    """One governance or stake step a user asked for. Relayed (`relayed`): the platform signs it, with the
    linked wallet's development key or, for queue and execute (anyone may send them), its own key; the
    `chain` worker sends it and running it again never repeats it on chain. Otherwise it is `prepared`: the
    page shows the transaction for the user's own wallet and the indexer sees the outcome on chain."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet_actions")
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    address = models.CharField(max_length=42, help_text="The wallet that acts (the platform's key for queue/execute).")
    params = models.JSONField(default=dict)
    request_id = models.CharField(max_length=66, blank=True, help_text="Stake/unstake: the id the contract takes once.")
    relayed = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=ActionState.choices)
    tx_hashes = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    proposal = models.ForeignKey(Proposal, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.kind} by {self.address} ({self.state})"


# --- Contributor stakes ---------------------------------------------------------------------------------

class DatanetStakeRequirement(models.Model):
    """A Datanet owner's rule: contributing needs at least `minimum` OPEN staked on it (active, not
    unstaking) by the contributor's linked wallets. The owner and curators are exempt."""

    datanet = models.OneToOneField("datanets.Datanet", on_delete=models.CASCADE, related_name="stake_requirement")
    minimum = AmountField(help_text="Base units of OPEN.")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"stake of {self.minimum} on datanet {self.datanet_id}"


class StakeEventKind(models.TextChoices):
    STAKED = "staked"
    UNSTAKE_REQUESTED = "unstake_requested", "unstake requested"
    WITHDRAWN = "withdrawn"
    SLASHED = "slashed"


class StakeEvent(models.Model):
    """A stake movement read from ContributorStakes. `datanet_id` is the on-chain id (the Datanet's pk)."""

    deployment = models.ForeignKey(GovernanceDeployment, on_delete=models.PROTECT, related_name="stake_events")
    kind = models.CharField(max_length=20, choices=StakeEventKind.choices)
    address = models.CharField(max_length=42, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="stake_events")
    datanet_id = models.PositiveBigIntegerField(db_index=True)
    amount = AmountField()
    from_active = AmountField(default=0)
    from_unstaking = AmountField(default=0)
    unlock_at = models.PositiveBigIntegerField(default=0, help_text="Unix time (unstake requests).")
    request_id = models.CharField(max_length=66, blank=True, help_text="Request id, or a slash's evidence hash.")
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    block_number = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [models.UniqueConstraint(fields=["deployment", "tx_hash", "log_index"],
                                               name="governance_stake_event_once")]

    def __str__(self):
        return f"{self.kind} {self.amount} by {self.address} on {self.datanet_id}"


class SlashState(models.TextChoices):
    PENDING = "pending", "being sent"
    DONE = "done", "slashed"
    FAILED = "failed"
    NOTHING = "nothing", "nothing staked to slash"


class StakeSlash(models.Model):
    """The platform's decision to slash a contributor's stake for rows rejected as spam or confirmed harmful,
    with its evidence (each row's id and the curator's reason, or the harm hold that proved it). `evidence_hash` is keccak256 of `evidence` as canonical JSON;
    the contract takes it once and names it in `Slashed`, so anyone can check the slash against the rows."""

    deployment = models.ForeignKey(GovernanceDeployment, on_delete=models.PROTECT, related_name="slashes")
    datanet = models.ForeignKey("datanets.Datanet", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stake_slashes")
    address = models.CharField(max_length=42)
    evidence = models.JSONField()
    evidence_hash = models.CharField(max_length=66, unique=True)
    share_bps = models.PositiveIntegerField(help_text="Share of the stake slashed.")
    amount = AmountField(default=0, help_text="OPEN moved to the Datanet's pool (once done).")
    state = models.CharField(max_length=16, choices=SlashState.choices, default=SlashState.PENDING)
    tx_hash = models.CharField(max_length=66, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"slash of {self.address} on datanet {self.datanet_id} ({self.state})"

    @property
    def rows(self) -> list[dict]:
        return self.evidence.get("rows", [])
