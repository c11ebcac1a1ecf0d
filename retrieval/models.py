"""One retrieval index per published version of a Documents Datanet.

The index files live in default storage under `storage_prefix`; the row records their identity
(`index_hash`, the sha256 of the engine's canonical manifest, which pins every file's sha256), the model
that embedded the passages, and how the build went (state, error, attempts, timings).

A `RetrievalApp` answers questions from the passages of such versions, under its own model name, and records
what each answer cited in a `RetrievalReceipt`."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from attribution.receipt_ids import new_receipt_id
from rewards.fields import AmountField


class IndexState(models.TextChoices):
    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class RetrievalIndex(models.Model):
    version = models.OneToOneField("datanets.DatanetVersion", on_delete=models.PROTECT, related_name="retrieval_index")
    version_hash = models.CharField(max_length=64, unique=True, help_text="The version's manifest hash.")
    index_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the index manifest.")
    storage_prefix = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=IndexState.choices, default=IndexState.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Task deliveries that started building it.")
    passage_count = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0, help_text="All index files together.")
    model_name = models.CharField(max_length=200, blank=True)
    model_fingerprint = models.CharField(max_length=64, blank=True, help_text="sha256 of the embedding model's files.")
    lexical = models.BooleanField(default=True, help_text="BM25 scoring built alongside the embeddings.")
    device = models.CharField(max_length=16, blank=True, help_text="Where the passages were embedded.")
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True, help_text="Reading, embedding and indexing.")
    store_seconds = models.FloatField(null=True, blank=True, help_text="Copying the files to storage.")

    class Meta:
        ordering = ["-queued_at"]
        verbose_name_plural = "retrieval indexes"

    def __str__(self):
        return f"Retrieval index of {self.version_hash[:12]} ({self.state})"

    @property
    def searchable(self) -> bool:
        return self.state == IndexState.READY


class AppState(models.TextChoices):
    ACTIVE = "active", "Deployed"
    RETIRED = "retired", "Retired"


class RetrievalApp(models.Model):
    """A retrieval app: published versions of Documents Datanets (each with a ready search index) and, optionally,
    a fine-tuned causal model of its owner's that writes the answer from the passages found. It answers on
    `/v1/chat/completions` under `slug`, like a deployed model version; without a causal model the answer is the
    best passage's most relevant sentence, quoted (`retrieval.services.answers`)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="retrieval_apps")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=100, unique=True, help_text="The `model` name in API calls.")
    description = models.TextField(blank=True)
    versions = models.ManyToManyField("datanets.DatanetVersion", related_name="retrieval_apps")
    causal_model = models.ForeignKey("models_registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="retrieval_apps", help_text="Writes the answer; none: extractive.")
    passages = models.PositiveSmallIntegerField(default=4, help_text="Passages retrieved per answer.")
    price_per_inference = AmountField(default=0, help_text="OPEN base units (18 decimals) charged per answer.")
    app_hash = models.CharField(max_length=64, unique=True,
                                help_text="sha256 of what answers: the slug, the versions' manifest hashes, the causal "
                                          "model's hash and the passages per answer. Fees and receipts name it.")
    state = models.CharField(max_length=16, choices=AppState.choices, default=AppState.ACTIVE, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} (retrieval app)"

    def get_absolute_url(self):
        return reverse("retrieval_apps:detail", args=[self.slug])

    # What the inference path reads of the model it serves (`inference.services.inference_begin`).
    task = "retrieval"

    @property
    def version_hash(self) -> str:
        return self.app_hash

    @property
    def answer_mode(self) -> str:
        return "generative" if self.causal_model_id else "extractive"


class RetrievalReceipt(models.Model):
    """Which passages one answer of a retrieval app cited, and how the contributors' part of its fee is split
    among their contributors (`contributor_shares_ppm`, the same shape as an attribution receipt's). Immutable
    and digested like one; its id shares their id space, so `/attribution/receipts/<id>/` finds it too."""

    receipt_id = models.CharField(max_length=36, unique=True, default=new_receipt_id, editable=False)
    app = models.ForeignKey(RetrievalApp, on_delete=models.PROTECT, related_name="receipts")
    app_hash = models.CharField(max_length=64, db_index=True)
    inference_id = models.CharField(max_length=128, null=True, blank=True, unique=True)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    input_text = models.TextField()
    output = models.TextField()
    query_digest = models.CharField(max_length=64, help_text="sha256 of the canonical {input, output}.")
    answer_mode = models.CharField(max_length=16)
    citations = models.JSONField(default=list, help_text="The cited passages, in footnote order.")
    contributor_shares_ppm = models.JSONField(default=dict, help_text="{user id: parts per million}, sums to 1e6.")
    contributor_rows = models.JSONField(default=dict, help_text="{user id: [passage row ids credited to them]}.")
    payload = models.JSONField(help_text="The receipt, exactly as digested.")
    receipt_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Retrieval receipt {self.receipt_id}"

    def get_absolute_url(self):
        return reverse("retrieval_apps:receipt", args=[self.receipt_id])
