"""Datanets: typed datasets, their members, contributions, rows (records) and frozen versions.

A `Record` is never deleted and never loses its contributor: payouts trace back to it through the
versions that include it and the model versions trained on those.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse

from datanets.ingest.schema import DatanetSchema


class TaskType(models.TextChoices):
    TEXT_CLASSIFICATION = "text-classification", "Text classification (text → label)"
    INSTRUCTION = "instruction", "Instruction (prompt → response)"
    TEXT = "text", "Text"
    DOCUMENTS = "documents", "Documents (passages for retrieval)"


class Licence(models.TextChoices):
    CC_BY_4 = "CC-BY-4.0", "CC BY 4.0"
    CC_BY_SA_4 = "CC-BY-SA-4.0", "CC BY-SA 4.0"
    CC0 = "CC0-1.0", "CC0 1.0"
    ODC_BY = "ODC-BY-1.0", "ODC-BY 1.0"
    APACHE_2 = "Apache-2.0", "Apache 2.0"
    MIT = "MIT", "MIT"
    PROPRIETARY = "proprietary", "Proprietary (all rights reserved)"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private (members only)"


class ContributionPolicy(models.TextChoices):
    ANYONE = "anyone", "Anyone signed in may contribute"
    MEMBERS = "members", "Members only"


class TrainingAccess(models.TextChoices):
    OPEN = "open", "Open: anyone who can see it may train on it"
    APPROVAL = "approval", "On approval: the owner approves each model owner"


class Datanet(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_datanets")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    summary = models.CharField(max_length=280, blank=True)
    description = models.TextField(blank=True, help_text="Markdown. Rendered safely (no scripts, no raw HTML).")
    tags = models.JSONField(default=list, blank=True)
    licence = models.CharField(max_length=32, choices=Licence.choices, default=Licence.CC_BY_4)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    contribution_policy = models.CharField(max_length=16, choices=ContributionPolicy.choices, default=ContributionPolicy.ANYONE)
    training_access = models.CharField(max_length=16, choices=TrainingAccess.choices, default=TrainingAccess.OPEN)
    task_type = models.CharField(max_length=32, choices=TaskType.choices)
    label_set = models.JSONField(default=list, blank=True)
    metadata_columns = models.JSONField(default=list, blank=True)
    max_field_length = models.PositiveIntegerField(default=10_000)
    max_rows_per_contribution = models.PositiveIntegerField(default=100_000)
    near_dup_threshold = models.FloatField(default=0.8, help_text="MinHash Jaccard estimate above which a row is flagged.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("datanets:detail", args=[self.slug])

    @property
    def schema(self) -> DatanetSchema:
        return DatanetSchema(
            task_type=self.task_type,
            label_set=tuple(self.label_set),
            metadata_columns=tuple(self.metadata_columns),
            max_field_length=self.max_field_length,
            max_rows_per_contribution=self.max_rows_per_contribution,
        )

    @property
    def is_public(self):
        return self.visibility == Visibility.PUBLIC


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    CURATOR = "curator", "Curator"
    CONTRIBUTOR = "contributor", "Contributor"


class Membership(models.Model):
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datanet_memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["datanet", "user"], name="one_membership_per_user")]

    def __str__(self):
        return f"{self.user} · {self.role} of {self.datanet}"


class ContributionSource(models.TextChoices):
    UPLOAD = "upload", "File upload (browser)"
    API_FILE = "api_file", "File upload (API)"
    API_ROWS = "api_rows", "JSON rows (API)"
    FORM = "form", "Typed into the form"


class ContributionState(models.TextChoices):
    RECEIVED = "received", "Received"
    VALIDATING = "validating", "Validating"
    IN_REVIEW = "in_review", "In review"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Contribution(models.Model):
    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="contributions")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contributions")
    source = models.CharField(max_length=16, choices=ContributionSource.choices)
    # Files are stored content-addressed under a generated name; the user's file name is display-only.
    file_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    file_name = models.CharField(max_length=255, blank=True)
    storage_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=ContributionState.choices, default=ContributionState.RECEIVED, db_index=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0, help_text="Rows accepted into review.")
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    rows_near_duplicate = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Task deliveries that started validating it.")
    notes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Contribution #{self.pk} to {self.datanet}"

    def get_absolute_url(self):
        return reverse("datanets:contribution", args=[self.datanet.slug, self.pk])

    @property
    def shown_name(self) -> str:
        """What the contributor calls this upload: the name of the file they chose, or how its rows came (typed
        into the form, sent as JSON rows), whose stored file name ("rows.jsonl") is the platform's own."""
        if self.source in (ContributionSource.FORM, ContributionSource.API_ROWS) or not self.file_name:
            return self.get_source_display()
        return self.file_name

    @property
    def progress_percent(self):
        if not self.progress_total:
            return 100 if self.state not in (ContributionState.RECEIVED, ContributionState.VALIDATING) else 0
        return min(100, round(100 * self.progress_done / self.progress_total))


class StakeQuotaLock(models.Model):
    """One row per contributor and staked Datanet, written first in the transaction that stores an upload's rows
    (`services.stake_quota.stake_quota_cap`). The write holds the row (PostgreSQL) or the database (SQLite) until
    that transaction commits, so the rows accepted in the last 24 hours are counted and the new ones stored as one
    step: two uploads validated at once cannot both take the rows left of the daily quota (issue #20)."""

    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="+")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    locked_at = models.DateTimeField(help_text="When an upload's rows were last counted against the quota.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["datanet", "contributor"],
                                               name="datanets_stake_quota_lock_unique")]

    def __str__(self):
        return f"Row quota of user #{self.contributor_id} on {self.datanet}"


class RecordStatus(models.TextChoices):
    PENDING = "pending", "In review"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Record(models.Model):
    """One row. Keeps its contributor, contribution and content hash forever."""

    # No single-column index on datanet: every composite index below leads with it, and each index
    # costs every ingested row an insert (rows arrive by the hundred thousand).
    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="records", db_index=False)
    contribution = models.ForeignKey(Contribution, on_delete=models.PROTECT, related_name="records")
    contributor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="records")
    row_number = models.PositiveIntegerField()
    line_number = models.PositiveIntegerField(null=True, blank=True)
    fields = models.JSONField()
    label = models.CharField(max_length=120, blank=True)
    content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=RecordStatus.choices, default=RecordStatus.PENDING)
    reason = models.CharField(max_length=500, blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    near_duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    near_duplicate_score = models.FloatField(null=True, blank=True)
    quality = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["datanet", "status"]),
            models.Index(fields=["datanet", "contributor"]),
            models.Index(fields=["datanet", "content_hash"]),
            models.Index(fields=["datanet", "label"]),  # label filters and distributions are per Datanet
        ]

    def __str__(self):
        return f"Row {self.pk} of {self.datanet_id}"

    @property
    def row_uid(self):
        """The stable id written into versions and training manifests."""
        return f"r{self.pk}"

    @property
    def excerpt(self):
        text = self.fields.get("text") or self.fields.get("prompt") or ""
        return text if len(text) <= 160 else text[:157] + "…"

    @property
    def where(self):
        """Where the row was in its contributor's upload: "line 7", "row 7" for uploads without lines, or for
        a passage of a document its document and anchor ("“guide.pdf”, p. 3")."""
        if self.line_number is None and set(self.fields) == DOCUMENT_PASSAGE_FIELDS:
            return document_location(self.fields)
        return f"line {self.line_number}" if self.line_number is not None else f"row {self.row_number}"


# A Documents Datanet's row (datanets/ingest/schema.py TASK_COLUMNS): such a Datanet has no other columns.
DOCUMENT_PASSAGE_FIELDS = frozenset({"text", "document", "anchor", "page", "headings"})


def document_location(values) -> str:
    """A passage's document and anchor as people cite it: "“guide.pdf”, p. 3" (or just the document)."""
    anchor = values.get("anchor") or ""
    return f"“{values.get('document')}”" + (f", {anchor}" if anchor else "")


class RowError(models.Model):
    """A row that was not accepted into review: why, where in the file, and what it held."""

    contribution = models.ForeignKey(Contribution, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField(null=True, blank=True)
    line_number = models.PositiveIntegerField(null=True, blank=True)
    code = models.CharField(max_length=32, db_index=True)
    message = models.CharField(max_length=500)
    duplicate_of = models.ForeignKey(Record, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    content = models.JSONField(default=dict, blank=True,
                               help_text="The row as read, each value shortened: its columns, or its raw text "
                                         "under 'raw' when it could not be parsed.")

    class Meta:
        ordering = ["row_number", "id"]

    def __str__(self):
        return f"{self.code} at {self.where}"

    @property
    def where(self):
        """The contributor's own numbering: the line of their file, the row where the upload has no lines, or
        the document (and anchor) of a document upload."""
        content = self.content or {}
        if self.line_number is None and content.get("document") and "anchor" in content:  # a document upload's
            return document_location(content)
        return f"line {self.line_number}" if self.line_number is not None else f"row {self.row_number}"


class DatanetVersion(models.Model):
    """An immutable snapshot of accepted rows: Parquet plus a manifest whose sha256 is the identity."""

    datanet = models.ForeignKey(Datanet, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    manifest_hash = models.CharField(max_length=64, unique=True)
    storage_prefix = models.CharField(max_length=255)
    manifest = models.JSONField()
    row_count = models.PositiveIntegerField()
    contributor_count = models.PositiveIntegerField()
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    records = models.ManyToManyField(Record, through="VersionRecord", related_name="versions")

    class Meta:
        ordering = ["datanet", "-number"]
        constraints = [models.UniqueConstraint(fields=["datanet", "number"], name="version_number_unique")]

    def __str__(self):
        return f"{self.datanet.slug} v{self.number}"

    @property
    def short_hash(self):
        return self.manifest_hash[:12]


class VersionRecord(models.Model):
    version = models.ForeignKey(DatanetVersion, on_delete=models.CASCADE)
    record = models.ForeignKey(Record, on_delete=models.PROTECT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "record"], name="version_record_unique")]

    def __str__(self):
        return f"{self.version_id}:{self.record_id}"


class AccessState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REFUSED = "refused", "Refused"


class TrainingAccessRequest(models.Model):
    datanet = models.ForeignKey(Datanet, on_delete=models.CASCADE, related_name="access_requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_access_requests")
    message = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=AccessState.choices, default=AccessState.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["datanet", "requester"], name="one_access_request_per_user")]

    def __str__(self):
        return f"{self.requester} → {self.datanet} ({self.state})"
