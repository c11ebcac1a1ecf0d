"""OpenLoRA serving records: one row per API request, whatever its outcome.

An `InferenceRecord` is written when a request is accepted (status `running`) and finished once its
answer, receipt and fee are known. Its id is the inference id: the idempotency key of the fee
settlement and the id attribution receipts and the ledger refer to. Records are append-only history
(never edited by people), so, like the ledger's fee transactions, they carry no separate audit row.
"""

import uuid

from django.conf import settings
from django.db import models

from rewards.fields import AmountField


class InferenceStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled (client left)"


class InferenceRecord(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="inference_records")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="inference_records")
    endpoint = models.CharField(max_length=40)
    model_slug = models.CharField(max_length=100, blank=True, db_index=True)
    model_version_hash = models.CharField(max_length=64, blank=True, db_index=True)
    adapter = models.CharField(max_length=100, blank=True, help_text="Adapter name on the model server.")
    adapter_slot = models.IntegerField(null=True, blank=True, help_text="Device slot that served it (0 = base).")
    stream = models.BooleanField(default=False)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    fee = AmountField(default=0, help_text="OPEN base units charged.")
    receipt_id = models.CharField(max_length=64, blank=True, db_index=True)
    query_digest = models.CharField(max_length=64, blank=True,
                                    help_text="sha256 of the canonical {input, output} that was answered (as in "
                                              "its receipt); a receipt for another query is never settled on.")
    status = models.CharField(max_length=16, choices=InferenceStatus.choices, default=InferenceStatus.RUNNING,
                              db_index=True)
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.endpoint} {self.model_slug} {self.status} ({self.id})"
