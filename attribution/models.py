"""Proof of Attribution: one gradient index per model version, the receipts scored against it, and
the data-valuation report written when the index is built.

The index files live in default storage under `storage_prefix`; the row here records their identity
(`index_hash`, the sha256 of the engine's canonical manifest, which pins every file's sha256) and the
secret projection seed, which is never shown in pages or the API.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse

# Defined in receipt_ids (retrieval's receipts share the id space); named here too, where migrations find it.
from .receipt_ids import new_receipt_id


class IndexState(models.TextChoices):
    NONE = "none", "Not built"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class AttributionIndex(models.Model):
    model_version = models.OneToOneField("models_registry.ModelVersion", on_delete=models.PROTECT,
                                         related_name="attribution_index")
    model_version_hash = models.CharField(max_length=64, unique=True)
    index_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the index manifest.")
    method = models.JSONField(default=dict, blank=True, help_text="Curvature, damping, projection, loss reduction.")
    k = models.PositiveIntegerField(help_text="Projected gradient dimensions.")
    seed = models.BigIntegerField(help_text="Secret projection seed: never shown.")
    damping = models.FloatField(null=True, blank=True, help_text="λ added to the curvature.")
    row_count = models.PositiveIntegerField(default=0)
    contributor_count = models.PositiveIntegerField(default=0)
    storage_prefix = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=IndexState.choices, default=IndexState.NONE, db_index=True)
    progress = models.FloatField(default=0.0, help_text="0..1 while building.")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)
    # Recorded at build so that a fee with no receipt at all (the index broke later, the receipt task was lost)
    # still pays the data by its value, without loading the index: the same weights an empty receipt pays.
    fallback_shares_ppm = models.JSONField(
        default=dict, blank=True,
        help_text="{user id: ppm}: who an answer without attribution pays (the training data by its value).")
    fallback_basis = models.CharField(max_length=16, blank=True, help_text="valuation or rows.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "attribution indexes"

    def __str__(self):
        return f"Index of {self.model_version_hash[:12]} ({self.state})"

    @property
    def progress_percent(self):
        return 100 if self.state == IndexState.READY else round(100 * self.progress)


class AttributionReceipt(models.Model):
    """Which training rows, and so which contributors, one inference's output came from."""

    receipt_id = models.CharField(max_length=36, unique=True, default=new_receipt_id, editable=False)
    model_version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT,
                                      related_name="attribution_receipts")
    model_version_hash = models.CharField(max_length=64, db_index=True)
    index_hash = models.CharField(max_length=64)
    method = models.JSONField(default=dict)
    inference_id = models.CharField(max_length=128, null=True, blank=True, unique=True)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    input_text = models.TextField()
    output = models.TextField()
    query_digest = models.CharField(max_length=64, help_text="sha256 of the canonical {input, output}.")
    top_rows = models.JSONField(default=list, help_text="[{row_id, contributor_id, score}], best first.")
    contributor_scores = models.JSONField(default=dict)
    contributor_shares_ppm = models.JSONField(default=dict, help_text="{user id: parts per million}, sums to 1e6.")
    contributor_rows = models.JSONField(default=dict, help_text="{user id: [row ids that supported the output]}.")
    negative_influence = models.JSONField(default=dict)
    empty_reason = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(help_text="The engine's receipt, exactly as digested.")
    receipt_digest = models.CharField(max_length=64)
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Receipt {self.receipt_id}"

    def get_absolute_url(self):
        return reverse("attribution:receipt", args=[self.receipt_id])


class ValuationReport(models.Model):
    """Influence of every training row and contributor on the model version's held-out eval split."""

    model_version = models.OneToOneField("models_registry.ModelVersion", on_delete=models.PROTECT,
                                         related_name="valuation_report")
    index_hash = models.CharField(max_length=64)
    eval_rows = models.PositiveIntegerField(default=0)
    row_values = models.JSONField(default=dict, help_text="{row id: value}; positive = lowered the eval loss.")
    contributor_values = models.JSONField(default=dict)
    most_helpful = models.JSONField(default=list)
    most_harmful = models.JSONField(default=list)
    likely_mislabeled = models.JSONField(default=list)
    harm_threshold = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Valuation of {self.model_version_id}"
