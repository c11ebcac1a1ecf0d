"""Upload validation (runs in a Celery task): a stored upload is parsed by the ingest engine, screened for
duplicates and near duplicates, and every row's result is written in one transaction (rows with COPY on
PostgreSQL). `contribution_validate` is the job; a failure names its reason (`lineage.jobs`)."""

import json
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from datanets.ingest import IngestError, IngestLimits, iter_rows
from datanets.ingest.document_rows import BundleLimits, iter_document_rows
from datanets.ingest.documents import DocumentLimits
from datanets.ingest.screen import KnownContent, UploadScreener
from lineage import jobs
from notifications import notify

from ..models import Contribution, ContributionState, Datanet, Record, RecordStatus, RowError, TaskType
from ..selectors import existing_rows_described_to
from .constants import DB_BATCH
from .near_duplicates import near_dup_index_load, near_dup_index_save
from .stake_quota import stake_quota_cap, stake_quota_for

PROGRESS_EVERY_S = 0.5
# The progress bar's share of each phase: parsing reads bytes up to 80%, screening reaches 95%, the
# commit 100%. A bar stuck at 100% while rows are still being stored would say the job hangs.
PROGRESS_PARSE_SHARE = 0.8
PROGRESS_SCREEN_SHARE = 0.95
VALIDATION_LABEL = "upload validation"  # names the job in messages and logs (`lineage.jobs`)


def _ingest_limits() -> IngestLimits:
    return IngestLimits(
        max_upload_bytes=settings.DATANETS_MAX_UPLOAD_BYTES,
        max_decompressed_bytes=settings.DATANETS_MAX_DECOMPRESSED_BYTES,
        max_gzip_ratio=settings.DATANETS_MAX_GZIP_RATIO,
        max_line_bytes=settings.DATANETS_MAX_LINE_BYTES,
    )


def _upload_rows(*, contribution: Contribution, fileobj, schema):
    """The upload's row results: a table file row by row, or, in a Documents Datanet, a document (or a zip of
    them) passage by passage. Everything after the reader (screening, storing, review) is the same."""
    if schema.task_type != TaskType.DOCUMENTS:
        return iter_rows(fileobj, contribution.file_name, schema, _ingest_limits(), total_bytes=contribution.size_bytes)
    limits = DocumentLimits(max_file_bytes=settings.DATANETS_MAX_DOCUMENT_BYTES)
    bundle = BundleLimits(max_documents=settings.DATANETS_MAX_DOCUMENTS_PER_UPLOAD,
                          max_total_bytes=settings.DATANETS_MAX_DECOMPRESSED_BYTES)
    return iter_document_rows(fileobj, contribution.file_name, schema, limits, bundle,
                              total_bytes=contribution.size_bytes, max_tokens=settings.DATANETS_PASSAGE_MAX_TOKENS,
                              overlap_tokens=settings.DATANETS_PASSAGE_OVERLAP_TOKENS)


def _existing_content(*, datanet: Datanet, hashes) -> dict:
    """Content hash -> :class:`KnownContent` of the earliest stored row with that content. One query on
    PostgreSQL (the hashes travel as one array parameter); batches elsewhere (SQLite caps parameters)."""
    hashes = list(hashes)
    if not hashes:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, content_hash, label FROM {Record._meta.db_table} "
                "WHERE datanet_id = %s AND content_hash = ANY(%s) ORDER BY id",
                [datanet.pk, hashes],
            )
            rows = cursor.fetchall()
    else:
        rows = []
        for start in range(0, len(hashes), DB_BATCH):
            batch = Record.objects.filter(datanet=datanet, content_hash__in=hashes[start : start + DB_BATCH])
            rows.extend(batch.values_list("pk", "content_hash", "label"))
        rows.sort()
    known = {}
    for pk, content_hash, label in rows:
        known.setdefault(content_hash, KnownContent(row_id=pk, label=label or None))
    return known


def _contribution_fail(*, contribution: Contribution, code: str, message: str) -> Contribution:
    with transaction.atomic():
        contribution.state = ContributionState.FAILED
        contribution.error_code = code
        contribution.error_message = message
        contribution.validated_at = timezone.now()
        contribution.save(update_fields=["state", "error_code", "error_message", "validated_at"])
        audit_record(actor=None, action=AuditAction.CONTRIBUTION_FAILED, target=contribution, details={"code": code})
    return contribution


@dataclass(slots=True)
class _NewRecord:
    """An accepted row on its way into the database: the columns that vary per row, without the cost of
    a model instance (COPY on PostgreSQL never needs one)."""

    row_number: int
    line_number: int | None
    fields: dict
    content_hash: str
    quality: dict
    near_duplicate_of_id: int | None = None
    near_duplicate_score: float | None = None
    # An earlier row of the same upload that this one nearly duplicates: (its row number, similarity).
    near_in_upload: tuple[int, float] | None = None

    @classmethod
    def from_result(cls, result) -> "_NewRecord":
        fields = result.fields
        record = cls(
            result.row_number, result.line_number, fields, result.content_hash,
            {"length": sum(len(value) for value in fields.values() if value)},
        )
        for flag in result.flags:
            if flag.kind == "near_duplicate" and flag.existing_row_id is not None and record.near_duplicate_of_id is None:
                record.near_duplicate_of_id, record.near_duplicate_score = int(flag.existing_row_id), flag.similarity
            elif flag.kind == "near_duplicate" and flag.upload_row_number is not None:
                record.near_in_upload = (flag.upload_row_number, flag.similarity)
            record.quality.setdefault("flags", []).append({"kind": flag.kind, "message": flag.message})
            if flag.kind == "label_conflict":
                # A top-level key the review queue can filter on with has_key on SQLite and PostgreSQL alike.
                record.quality["label_conflict"] = True
        return record

    @property
    def label(self) -> str:
        return str(self.fields.get("label") or "")[:120]


def contribution_validate(*, contribution_id: int) -> Contribution:
    """Parse, validate and de-duplicate a stored upload; write every row's result in one transaction.

    Idempotent: a finished contribution is returned as it is; one caught mid-way by a worker crash
    (state `validating`) wrote nothing yet, so it simply runs again from the stored file, up to
    `JOB_MAX_ATTEMPTS` deliveries (`lineage.jobs`). A file the engine refuses fails with its reason; an
    unexpected error fails it with a generic message and an error id (the details are logged)."""
    claim = jobs.claim_job(
        Contribution, contribution_id, label=VALIDATION_LABEL, start_states=(ContributionState.RECEIVED,),
        running_state=ContributionState.VALIDATING, fail=_contribution_job_fail, on_start=_contribution_job_start,
        action="Upload the file again (split it if it is large), or contact an admin if it keeps failing.",
    )
    if not claim.run:
        return claim.job
    return jobs.run_job(claim.job, lambda: _contribution_validate_claimed(claim.job), label=VALIDATION_LABEL,
                        fail=_contribution_job_fail, expected=(IngestError,))


def _contribution_job_start(contribution: Contribution, claim) -> None:
    contribution.progress_done = 0
    contribution.save(update_fields=["progress_done"])


def _contribution_job_fail(contribution: Contribution, failure) -> Contribution:
    return _contribution_fail(contribution=contribution, code=failure.code, message=failure.message)


def _contribution_validate_claimed(contribution: Contribution) -> Contribution:
    datanet = contribution.datanet
    schema = datanet.schema
    results = []
    with default_storage.open(contribution.storage_name, "rb") as fh:  # an IngestError fails it with its reason
        stream = _upload_rows(contribution=contribution, fileobj=fh, schema=schema)
        last_report = time.monotonic()
        for result in stream:
            results.append(result)
            if time.monotonic() - last_report > PROGRESS_EVERY_S:
                Contribution.objects.filter(pk=contribution.pk).update(
                    progress_done=int(stream.bytes_read * PROGRESS_PARSE_SHARE))
                last_report = time.monotonic()
        notes = list(stream.notes)

    # Parsing is done; screening and storing still take a few seconds on a large file, so the bar says so.
    Contribution.objects.filter(pk=contribution.pk).update(
        progress_done=int(contribution.progress_total * PROGRESS_PARSE_SHARE))
    index = near_dup_index_load(datanet=datanet)
    existing = _existing_content(datanet=datanet, hashes={r.content_hash for r in results if r.accepted})
    # Rows already in the Datanet are named to the contributor by what they may see of them, not by id.
    screener = UploadScreener(schema, existing=existing, near_dup_index=index, describe_existing=lambda ids: (
        existing_rows_described_to(datanet=datanet, user=contribution.contributor, row_ids=ids)))
    records: list[_NewRecord] = []
    errors: list[RowError] = []
    duplicates_in_upload: list[tuple[RowError, int]] = []  # linked to the earlier row once it has an id
    for result in screener.screen_all(results):
        if result.accepted:
            records.append(_NewRecord.from_result(result))
            continue
        error = RowError(
            contribution=contribution, row_number=result.row_number, line_number=result.line_number,
            code=str(result.rejection.code), message=result.rejection.message[:500],
            duplicate_of_id=_duplicate_target(result, existing), content=dict(result.content or {}),
        )
        errors.append(error)
        if error.duplicate_of_id is None and result.rejection.duplicate_of_upload_row is not None:
            duplicates_in_upload.append((error, result.rejection.duplicate_of_upload_row))
    rows_total = len(results)
    del results
    # A staked Datanet's rows per day scale with the contributor's stake: read here, applied when storing.
    quota = stake_quota_for(contribution=contribution)
    Contribution.objects.filter(pk=contribution.pk).update(
        progress_done=int(contribution.progress_total * PROGRESS_SCREEN_SHARE))
    # The cached index may name rows that no longer exist (a restored database): link only live rows.
    linked = {r.near_duplicate_of_id for r in records if r.near_duplicate_of_id}
    live = set(Record.objects.filter(datanet=datanet, pk__in=linked).values_list("pk", flat=True)) if linked else set()
    for record in records:
        if record.near_duplicate_of_id and record.near_duplicate_of_id not in live:
            record.near_duplicate_of_id = record.near_duplicate_score = None
    with transaction.atomic():
        # First in the transaction (it locks the contributor's quota until commit): rows past what is left today
        # go unreviewed, and an upload validated at the same moment counts these rows before taking its own.
        records, over_quota = stake_quota_cap(contribution=contribution, records=records, quota=quota)
        errors += over_quota
        contribution = Contribution.objects.select_for_update().get(pk=contribution.pk)
        if contribution.state != ContributionState.VALIDATING:  # another delivery finished first
            return contribution
        by_row = _records_insert(datanet=datanet, contribution=contribution, records=records)
        for error, earlier in duplicates_in_upload:
            error.duplicate_of_id = by_row.get(earlier)
        RowError.objects.bulk_create(errors, batch_size=DB_BATCH)
        contribution.rows_total = rows_total
        contribution.rows_accepted = len(records)
        contribution.rows_rejected = sum(1 for e in errors if e.code != "duplicate")
        contribution.rows_duplicate = sum(1 for e in errors if e.code == "duplicate")
        contribution.rows_near_duplicate = sum(1 for r in records if r.near_duplicate_of_id)
        contribution.notes = notes
        contribution.progress_done = contribution.progress_total
        contribution.validated_at = timezone.now()
        contribution.state = ContributionState.IN_REVIEW if records else ContributionState.DONE
        contribution.save()
        audit_record(
            actor=None, action=AuditAction.CONTRIBUTION_VALIDATED, target=contribution,
            details={"accepted": len(records), "rejected": contribution.rows_rejected, "duplicates": contribution.rows_duplicate},
        )
        notify.event(kind="contribution.validated", object_id=contribution.pk)
    # Indexed after commit: entries for rows that were never committed would flag phantom matches. The
    # screener already hashed these rows; their signatures are reused rather than computed again.
    computed = screener.signatures_of(by_row)
    if computed is not None:
        row_numbers, signatures, keys = computed
        fresh = [i for i, n in enumerate(row_numbers) if by_row[n] not in index]
        index.add_signatures([by_row[row_numbers[i]] for i in fresh], signatures[fresh], keys[fresh])
    near_dup_index_save(datanet=datanet, index=index)
    return contribution


RECORD_COPY_COLUMNS = (
    "id", "datanet_id", "contribution_id", "contributor_id", "row_number", "line_number", "fields", "label",
    "content_hash", "status", "reason", "near_duplicate_of_id", "near_duplicate_score", "quality", "created_at",
)


def _link_within_upload(records: list[_NewRecord], by_row: dict[int, int]) -> list[_NewRecord]:
    """Point rows that nearly duplicate an earlier row of the same upload at that row's id (a link to a
    row already in the Datanet wins). Returns the rows that changed."""
    changed = []
    for record in records:
        if record.near_in_upload is not None and record.near_duplicate_of_id is None:
            earlier, similarity = record.near_in_upload
            if earlier in by_row:
                record.near_duplicate_of_id, record.near_duplicate_score = by_row[earlier], similarity
                changed.append(record)
    return changed


def _records_insert(*, datanet: Datanet, contribution: Contribution, records: list[_NewRecord]) -> dict[int, int]:
    """Insert an upload's accepted rows; returns row number -> id.

    On PostgreSQL the ids are drawn from the table's sequence in one query, so links between rows of the
    same upload are resolved before writing, and the rows go in with COPY (measured on 10,000 rows:
    ~4x the rows per second of bulk_create, which spends its time building parameters and model
    instances). Elsewhere (SQLite in tests and development) bulk_create, then one bulk_update of the
    in-upload links."""
    if not records:
        return {}
    if connection.vendor != "postgresql":
        objects = [
            Record(
                datanet=datanet, contribution=contribution, contributor_id=contribution.contributor_id,
                row_number=r.row_number, line_number=r.line_number, fields=r.fields, label=r.label,
                content_hash=r.content_hash, near_duplicate_of_id=r.near_duplicate_of_id,
                near_duplicate_score=r.near_duplicate_score, quality=r.quality,
            )
            for r in records
        ]
        Record.objects.bulk_create(objects, batch_size=DB_BATCH)
        if any(o.pk is None for o in objects):  # a backend that cannot return ids from a bulk insert
            by_row = dict(Record.objects.filter(contribution=contribution).values_list("row_number", "pk"))
        else:
            by_row = {o.row_number: o.pk for o in objects}
        changed = {r.row_number for r in _link_within_upload(records, by_row)}
        if changed:
            for obj, record in zip(objects, records):
                obj.pk = by_row[record.row_number]
                obj.near_duplicate_of_id, obj.near_duplicate_score = record.near_duplicate_of_id, record.near_duplicate_score
            Record.objects.bulk_update(
                [o for o in objects if o.row_number in changed], ["near_duplicate_of", "near_duplicate_score"],
                batch_size=DB_BATCH,
            )
        return by_row
    table = Record._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(records)]
        )
        ids = sorted(row[0] for row in cursor.fetchall())  # ids in file order, as bulk_create gives them
    by_row = {r.row_number: pk for r, pk in zip(records, ids)}
    _link_within_upload(records, by_row)
    now = timezone.now()
    datanet_id, contribution_id, contributor_id = datanet.pk, contribution.pk, contribution.contributor_id
    pending, dumps = RecordStatus.PENDING.value, json.dumps
    columns = ", ".join(RECORD_COPY_COLUMNS)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for pk, r in zip(ids, records):
            copy.write_row((
                pk, datanet_id, contribution_id, contributor_id, r.row_number, r.line_number, dumps(r.fields),
                r.label, r.content_hash, pending, "", r.near_duplicate_of_id, r.near_duplicate_score,
                dumps(r.quality), now,
            ))
    return by_row


def _duplicate_target(result, existing) -> int | None:
    if str(result.rejection.code) != "duplicate":
        return None
    known = existing.get(result.content_hash) if result.content_hash else None
    return int(known.row_id) if known and known.row_id is not None else None
