from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models


class User(AbstractUser):
    """Everyone can contribute; curator and owner are per-Datanet memberships, staff use the admin."""

    email = models.EmailField("email address", unique=True)
    display_name = models.CharField(max_length=80, blank=True)

    def __str__(self):
        return self.display_name or self.email or self.username

    @property
    def public_name(self):
        return self.display_name or self.username


class ApiKey(models.Model):
    """A named, scoped key. Only a SHA-256 of the secret is stored: the secret has 256 bits of
    randomness, so a fast hash is as safe as a slow one and keeps every API call cheap."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part shown in lists and logs.")
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self):
        return self.revoked_at is None

    def has_scope(self, scope):
        return scope in self.scopes


class AuditAction(models.TextChoices):
    """Every action an `AuditEvent` records: `accounts.services.audit_record` refuses any other, so writers
    (services) and readers (insights' summaries, the admin's filter) share one list. A new write adds its
    member here; no migration (the column stays a plain string, so old rows stay readable)."""

    # accounts
    API_KEY_CREATE = "api_key.create"
    API_KEY_REVOKE = "api_key.revoke"
    # accounts (the demo's users)
    DEMO_USER_CREATE = "demo.user_create"
    # datanets
    DATANET_ACCESS_APPROVED = "datanet.access_approved"
    DATANET_ACCESS_REFUSED = "datanet.access_refused"
    DATANET_ACCESS_REQUEST = "datanet.access_request"
    DATANET_CREATE = "datanet.create"
    DATANET_MEMBER_REMOVE = "datanet.member_remove"
    DATANET_MEMBER_SET = "datanet.member_set"
    DATANET_UPDATE = "datanet.update"
    DATANET_VERSION_PUBLISH = "datanet.version_publish"
    DATANET_VERSION_VERIFY = "datanet.version_verify"
    CONTRIBUTION_CREATE = "contribution.create"
    CONTRIBUTION_FAILED = "contribution.failed"
    CONTRIBUTION_VALIDATED = "contribution.validated"
    RECORD_ACCEPT = "record.accept"
    RECORD_FLAG_MISLABELED = "record.flag_mislabeled"
    RECORD_REJECT = "record.reject"
    RECORD_RELABEL = "record.relabel"
    # models_registry
    FINE_TUNE_CANCEL = "fine_tune.cancel"
    FINE_TUNE_CANCELLED = "fine_tune.cancelled"
    FINE_TUNE_CREATE = "fine_tune.create"
    FINE_TUNE_FAILED = "fine_tune.failed"
    FINE_TUNE_RESUME = "fine_tune.resume"
    MODEL_VERSION_DEPLOY = "model_version.deploy"
    MODEL_VERSION_REGISTER = "model_version.register"
    MODEL_VERSION_UNDEPLOY = "model_version.undeploy"
    MODEL_VERSION_UPDATE = "model_version.update"
    # attribution
    ATTRIBUTION_INDEX_BUILD_START = "attribution.index_build_start"
    ATTRIBUTION_INDEX_FAILED = "attribution.index_failed"
    ATTRIBUTION_INDEX_QUEUE = "attribution.index_queue"
    ATTRIBUTION_INDEX_READY = "attribution.index_ready"
    # retrieval
    RETRIEVAL_INDEX_BUILD_START = "retrieval.index_build_start"
    RETRIEVAL_INDEX_CORRUPT = "retrieval.index_corrupt"
    RETRIEVAL_INDEX_FAILED = "retrieval.index_failed"
    RETRIEVAL_INDEX_QUEUE = "retrieval.index_queue"
    RETRIEVAL_INDEX_READY = "retrieval.index_ready"
    RETRIEVAL_INDEX_REQUEUE = "retrieval.index_requeue"
    RETRIEVAL_APP_DEPLOY = "retrieval.app_deploy"
    RETRIEVAL_APP_RETIRE = "retrieval.app_retire"
    RETRIEVAL_APP_UPDATE = "retrieval.app_update"
    # inference
    INFERENCE_MODEL_ROOT_PRUNED = "inference.model_root_pruned"
    # rewards
    REWARDS_CLAIM_RELAY = "rewards.claim_relay"
    REWARDS_CLAIM_RELAY_FAILED = "rewards.claim_relay_failed"
    REWARDS_CLAIM_RELAY_REQUEST = "rewards.claim_relay_request"
    REWARDS_CREDIT_GRANT = "rewards.credit_grant"
    REWARDS_DEPOSIT_CREDIT = "rewards.deposit_credit"
    REWARDS_EARNINGS_HOLD = "rewards.earnings_hold"
    REWARDS_EARNINGS_HOLD_CONFIRM = "rewards.earnings_hold_confirm"
    REWARDS_EARNINGS_HOLD_RELEASE = "rewards.earnings_hold_release"
    REWARDS_EARNINGS_HOLD_UPDATE = "rewards.earnings_hold_update"
    REWARDS_EPOCH_CLOSE = "rewards.epoch_close"
    REWARDS_EPOCH_CLOSE_STOPPED = "rewards.epoch_close_stopped"
    REWARDS_EPOCH_FREEZE = "rewards.epoch_freeze"
    REWARDS_FEE_POLICY_SET = "rewards.fee_policy_set"
    REWARDS_SLASH_BOOKED = "rewards.slash_booked"
    REWARDS_SLASH_RELEASED = "rewards.slash_released"
    REWARDS_SLASH_RELEASE_FAILED = "rewards.slash_release_failed"
    REWARDS_ISSUE_RESOLVE = "rewards.issue_resolve"
    REWARDS_STARTER_GRANT = "rewards.starter_grant"
    REWARDS_WALLET_CHANGE = "rewards.wallet_change"
    REWARDS_WALLET_LINK = "rewards.wallet_link"
    # governance (a wallet action's kind: requested, retried, failed)
    GOVERNANCE_FEE_SPLIT_APPLIED = "governance.fee_split_applied"
    GOVERNANCE_PARAMETER_APPLIED = "governance.parameter_applied"
    GOVERNANCE_PROPOSAL_RECORDED = "governance.proposal_recorded"
    GOVERNANCE_STAKE_REQUIREMENT_SET = "governance.stake_requirement_set"
    GOVERNANCE_STAKE_SLASH_DECIDED = "governance.stake_slash_decided"
    GOVERNANCE_STAKE_SLASH_FAILED = "governance.stake_slash_failed"
    GOVERNANCE_DELEGATE_REQUESTED = "governance.delegate_requested"
    GOVERNANCE_DELEGATE_RETRIED = "governance.delegate_retried"
    GOVERNANCE_DELEGATE_FAILED = "governance.delegate_failed"
    GOVERNANCE_PROPOSE_REQUESTED = "governance.propose_requested"
    GOVERNANCE_PROPOSE_RETRIED = "governance.propose_retried"
    GOVERNANCE_PROPOSE_FAILED = "governance.propose_failed"
    GOVERNANCE_VOTE_REQUESTED = "governance.vote_requested"
    GOVERNANCE_VOTE_RETRIED = "governance.vote_retried"
    GOVERNANCE_VOTE_FAILED = "governance.vote_failed"
    GOVERNANCE_QUEUE_REQUESTED = "governance.queue_requested"
    GOVERNANCE_QUEUE_RETRIED = "governance.queue_retried"
    GOVERNANCE_QUEUE_FAILED = "governance.queue_failed"
    GOVERNANCE_EXECUTE_REQUESTED = "governance.execute_requested"
    GOVERNANCE_EXECUTE_RETRIED = "governance.execute_retried"
    GOVERNANCE_EXECUTE_FAILED = "governance.execute_failed"
    GOVERNANCE_STAKE_REQUESTED = "governance.stake_requested"
    GOVERNANCE_STAKE_RETRIED = "governance.stake_retried"
    GOVERNANCE_STAKE_FAILED = "governance.stake_failed"
    GOVERNANCE_UNSTAKE_REQUESTED = "governance.unstake_requested"
    GOVERNANCE_UNSTAKE_RETRIED = "governance.unstake_retried"
    GOVERNANCE_UNSTAKE_FAILED = "governance.unstake_failed"
    GOVERNANCE_WITHDRAW_REQUESTED = "governance.withdraw_requested"
    GOVERNANCE_WITHDRAW_RETRIED = "governance.withdraw_retried"
    GOVERNANCE_WITHDRAW_FAILED = "governance.withdraw_failed"
    # insights
    INSIGHTS_HISTORY_GENERATE = "insights.history_generate"
    # notifications
    NOTIFICATIONS_EVENT = "notifications.event"
    NOTIFICATIONS_SECRET_KEY_ROTATE = "notifications.secret_key_rotate"
    NOTIFICATIONS_SETTINGS_UPDATE = "notifications.settings_update"
    NOTIFICATIONS_WEBHOOK_CREATE = "notifications.webhook_create"
    NOTIFICATIONS_WEBHOOK_DELETE = "notifications.webhook_delete"
    NOTIFICATIONS_WEBHOOK_TEST = "notifications.webhook_test"


class AuditEvent(models.Model):
    """Append-only record of a change, written by services in the same transaction as the change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are append-only.")
