"""One retrieval index per published version of a Documents Datanet.

The index files live in default storage under `storage_prefix`; the row records their identity
(`index_hash`, the sha256 of the engine's canonical manifest, which pins every file's sha256), the model
that embedded the passages, and how the build went (state, error, attempts, timings)."""

from django.db import models


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
