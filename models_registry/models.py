"""ModelFactory: base models, fine-tune jobs and the immutable model versions they register.

A model version's `version_hash` (the training engine's manifest hash) is its identity in every later
record: serving, attribution receipts, payouts.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse

from rewards.fields import AmountField


class SourceKind(models.TextChoices):
    PACKAGE = "package", "Python package that ships weights"
    PATH = "path", "Local directory"
    HUB = "hub", "Hugging Face hub id (needs network)"


class BaseModel(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    source_ref = models.CharField(max_length=500, help_text="Package name, directory path or hub id.")
    architecture = models.CharField(max_length=40, help_text="transformers model_type, e.g. bert, llama, gpt2.")
    task_types = models.JSONField(default=list, help_text="Datanet task types this base can be fine-tuned for.")
    licence = models.CharField(max_length=80, blank=True)
    parameters = models.BigIntegerField(default=0, help_text="Number of parameters.")
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class FineTuneJob(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fine_tune_jobs")
    name = models.CharField(max_length=120)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="jobs")
    task = models.CharField(max_length=32)
    datanet_versions = models.ManyToManyField("datanets.DatanetVersion", related_name="fine_tune_jobs")
    label_names = models.JSONField(default=list, blank=True)
    hyperparameters = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    eta_s = models.FloatField(null=True, blank=True)
    examples_per_s = models.FloatField(null=True, blank=True)
    loss_curve = models.JSONField(default=list, blank=True, help_text="[step, loss] pairs.")
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Task deliveries that started this job.")
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    def get_absolute_url(self):
        return reverse("models_registry:job", args=[self.pk])

    @property
    def progress_percent(self):
        if self.state == JobState.SUCCEEDED:
            return 100
        return round(100 * self.step / self.total_steps) if self.total_steps else 0

    @property
    def is_active(self):
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    @property
    def total_epochs(self):
        """The epochs the job trains for (its recorded hyper-parameters); `epoch` counts them from 1."""
        return (self.hyperparameters or {}).get("epochs")


class AttributionStatus(models.TextChoices):
    NONE = "none", "Not built"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ModelVersion(models.Model):
    job = models.OneToOneField(FineTuneJob, on_delete=models.PROTECT, related_name="model_version")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="model_versions")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="model_versions")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=100, unique=True, help_text="The `model` name in API calls.")
    version_hash = models.CharField(max_length=64, unique=True)
    task = models.CharField(max_length=32)
    label_names = models.JSONField(default=list, blank=True)
    storage_prefix = models.CharField(max_length=255)
    manifest = models.JSONField()
    metrics = models.JSONField(default=dict)
    base_metrics = models.JSONField(default=dict)
    lineage = models.JSONField(default=dict, help_text="Datanets, versions, licences, rows and contributors.")
    price_per_inference = AmountField(default=0, help_text="OPEN base units (18 decimals) charged per answer.")
    allow_download = models.BooleanField(default=False)
    deployed = models.BooleanField(default=False)
    attribution_status = models.CharField(max_length=16, choices=AttributionStatus.choices, default=AttributionStatus.NONE)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.version_hash[:12]})"

    def get_absolute_url(self):
        return reverse("models_registry:version", args=[self.slug])

    @property
    def short_hash(self):
        return self.version_hash[:12]
