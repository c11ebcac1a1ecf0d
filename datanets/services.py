"""Writes for Datanets. Each function takes keyword arguments, runs in one transaction and records an
audit event in it. Long work (parsing a file, writing a version) is queued on commit as a task."""

import hashlib
import json
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.text import slugify

from accounts.services import audit_record
from datanets.ingest import IngestError, IngestLimits, iter_rows
from datanets.ingest.neardup import NearDupIndex
from datanets.ingest.normalise import canonical_json
from datanets.ingest.schema import DatanetSchema, SchemaError
from datanets.ingest.screen import KnownContent, UploadScreener
from datanets.ingest.versions import (
    DATA_NAME,
    MANIFEST_NAME,
    VersionManifest,
    VersionRow,
    diff_versions,
    export_version,
    verify_version,
    write_version,
)
from lineage import jobs

from .models import (
    AccessState,
    Contribution,
    ContributionSource,
    ContributionState,
    Datanet,
    DatanetVersion,
    Membership,
    Record,
    RecordStatus,
    Role,
    RowError,
    TrainingAccessRequest,
    VersionRecord,
)
from .selectors import datanet_permissions, existing_rows_described_to

HASH_CHUNK = 1024 * 1024
SCHEMA_FIELDS = ("task_type", "label_set", "metadata_columns", "max_field_length", "max_rows_per_contribution")
EDITABLE_FIELDS = (
    "name", "summary", "description", "tags", "licence", "visibility", "contribution_policy", "training_access",
    "near_dup_threshold", "label_set", "metadata_columns", "max_field_length", "max_rows_per_contribution",
)


def _validated_schema(**schema_fields) -> DatanetSchema:
    try:
        return DatanetSchema(**schema_fields)
    except SchemaError as exc:
        raise ValidationError({"label_set" if "label" in str(exc).lower() else "task_type": str(exc)}) from exc


def _clean_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = sorted({slugify(t)[:32] for t in (tags or []) if slugify(t)})
    if len(cleaned) > 12:
        raise ValidationError({"tags": "Use at most 12 tags."})
    return cleaned


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "datanet"
    slug, n = base, 2
    while Datanet.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def datanet_create(*, owner, name: str, task_type: str, label_set=(), metadata_columns=(), summary: str = "",
                   description: str = "", tags=(), licence: str = "CC-BY-4.0", visibility: str = "public",
                   contribution_policy: str = "anyone", training_access: str = "open",
                   max_field_length: int = 10_000, max_rows_per_contribution: int = 100_000,
                   near_dup_threshold: float = 0.8, slug: str = "") -> Datanet:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the Datanet a name."})
    labels = [str(label).strip() for label in (label_set or []) if str(label).strip()]
    _validated_schema(
        task_type=task_type, label_set=tuple(labels), metadata_columns=tuple(metadata_columns or ()),
        max_field_length=max_field_length, max_rows_per_contribution=max_rows_per_contribution,
    )
    if not 0.3 <= float(near_dup_threshold) <= 1.0:
        raise ValidationError({"near_dup_threshold": "Choose a threshold between 0.3 and 1.0."})
    slug = slugify(slug) if slug else _unique_slug(name)
    if Datanet.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"The address '{slug}' is taken; choose another."})
    with transaction.atomic():
        datanet = Datanet(
            owner=owner, name=name[:120], slug=slug, summary=summary[:280], description=description,
            tags=_clean_tags(tags), licence=licence, visibility=visibility, contribution_policy=contribution_policy,
            training_access=training_access, task_type=task_type, label_set=labels,
            metadata_columns=list(metadata_columns or ()), max_field_length=max_field_length,
            max_rows_per_contribution=max_rows_per_contribution, near_dup_threshold=float(near_dup_threshold),
        )
        datanet.full_clean()
        datanet.save()
        Membership.objects.create(datanet=datanet, user=owner, role=Role.OWNER)
        audit_record(actor=owner, action="datanet.create", target=datanet, details={"slug": slug, "task_type": task_type})
    return datanet


def datanet_update(*, datanet: Datanet, actor, **changes) -> Datanet:
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner changes a Datanet's settings.")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: "This setting cannot be changed." for field in unknown})
    with transaction.atomic():
        datanet = Datanet.objects.select_for_update().get(pk=datanet.pk)
        if "tags" in changes:
            changes["tags"] = _clean_tags(changes["tags"])
        if "label_set" in changes:
            changes["label_set"] = [str(label).strip() for label in changes["label_set"] if str(label).strip()]
            used = set(Record.objects.filter(datanet=datanet).exclude(label="").values_list("label", flat=True))
            dropped = used - set(changes["label_set"])
            if dropped:
                raise ValidationError(
                    {"label_set": f"Rows already use {', '.join(sorted(dropped))}; labels in use cannot be removed."}
                )
        before = {field: getattr(datanet, field) for field in changes}
        for field, value in changes.items():
            setattr(datanet, field, value)
        _validated_schema(**{field: getattr(datanet, field) if field not in ("label_set", "metadata_columns")
                             else tuple(getattr(datanet, field)) for field in SCHEMA_FIELDS})
        datanet.full_clean()
        datanet.save()
        audit_record(
            actor=actor, action="datanet.update", target=datanet,
            details={field: {"from": before[field], "to": changes[field]} for field in changes if before[field] != changes[field]},
        )
    return datanet


def membership_set(*, datanet: Datanet, actor, user, role: str) -> Membership:
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner manages members.")
    if role not in (Role.CURATOR, Role.CONTRIBUTOR):
        raise ValidationError({"role": "Members are curators or contributors; ownership is not transferable here."})
    if user.pk == datanet.owner_id:
        raise ValidationError({"user": "The owner is already a member."})
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(datanet=datanet, user=user, defaults={"role": role})
        audit_record(actor=actor, action="datanet.member_set", target=datanet, details={"user": user.pk, "role": role})
    return membership


def membership_remove(*, datanet: Datanet, actor, user) -> None:
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner manages members.")
    with transaction.atomic():
        Membership.objects.filter(datanet=datanet, user=user).exclude(role=Role.OWNER).delete()
        audit_record(actor=actor, action="datanet.member_remove", target=datanet, details={"user": user.pk})


# --- Contributions -----------------------------------------------------------------------------------

def _safe_display_name(name: str) -> str:
    """Keep only the last path component and printable characters: the name is shown, never used as a path."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or "upload"


def _check_quota(*, contributor, size: int) -> None:
    since = timezone.now() - timedelta(days=1)
    recent = Contribution.objects.filter(contributor=contributor, created_at__gte=since)
    count = recent.count()
    if count >= settings.DATANETS_DAILY_CONTRIBUTIONS:
        raise ValidationError(
            f"You have made {count} contributions in the last 24 hours, the daily limit. Try again tomorrow."
        )
    used = recent.aggregate(total=Sum("size_bytes"))["total"] or 0
    if used + size > settings.DATANETS_DAILY_UPLOAD_BYTES:
        raise ValidationError(
            f"This upload would take you past the daily upload allowance of "
            f"{settings.DATANETS_DAILY_UPLOAD_BYTES // (1024 * 1024)} MB. Try again tomorrow or upload less."
        )


def _store_content_addressed(chunks) -> tuple[str, str, int]:
    """Stream chunks to a temporary file while hashing, then store under the sha256 (once per content)."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as spool:
        for chunk in chunks:
            size += len(chunk)
            if size > settings.DATANETS_MAX_UPLOAD_BYTES:
                raise ValidationError(
                    f"The file is larger than the {settings.DATANETS_MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit. "
                    "Split it into smaller files."
                )
            digest.update(chunk)
            spool.write(chunk)
        sha = digest.hexdigest()
        name = f"contributions/{sha[:2]}/{sha[2:4]}/{sha}"
        if not default_storage.exists(name):
            spool.seek(0)
            stored = default_storage.save(name, File(spool))
            if stored != name:  # a concurrent identical upload won the race; keep one copy
                default_storage.delete(stored)
    return sha, name, size


def _contribution_start(*, datanet: Datanet, contributor, source: str, chunks, file_name: str, size_hint: int) -> Contribution:
    perms = datanet_permissions(datanet=datanet, user=contributor)
    if not perms.can_contribute:
        raise PermissionDenied("Only members may contribute to this Datanet." if perms.can_view else "No such Datanet.")
    if size_hint == 0:
        raise ValidationError("The file is empty. Choose a file with a header row and at least one data row.")
    _check_quota(contributor=contributor, size=size_hint)
    sha, storage_name, size = _store_content_addressed(chunks)
    from .tasks import contribution_validate_task

    with transaction.atomic():
        contribution = Contribution.objects.create(
            datanet=datanet, contributor=contributor, source=source, file_sha256=sha,
            file_name=_safe_display_name(file_name), storage_name=storage_name, size_bytes=size, progress_total=size,
        )
        audit_record(
            actor=contributor, action="contribution.create", target=contribution,
            details={"datanet": datanet.slug, "source": source, "sha256": sha, "bytes": size},
        )
        contribution_validate_task.delay_on_commit(contribution.pk)
    return contribution


def contribution_create_from_file(*, datanet: Datanet, contributor, uploaded_file, source: str = ContributionSource.UPLOAD) -> Contribution:
    return _contribution_start(
        datanet=datanet, contributor=contributor, source=source, chunks=uploaded_file.chunks(HASH_CHUNK),
        file_name=uploaded_file.name, size_hint=uploaded_file.size,
    )


def contribution_create_from_rows(*, datanet: Datanet, contributor, rows, source: str = ContributionSource.API_ROWS) -> Contribution:
    """JSON rows (API) and form rows take the same path as files: they are stored as JSONL and parsed
    by the same engine, so every row gets the same checks and the same kind of result."""
    if not isinstance(rows, list) or not rows:
        raise ValidationError({"rows": "Send a non-empty list of row objects."})
    if len(rows) > datanet.max_rows_per_contribution:
        raise ValidationError(
            {"rows": f"At most {datanet.max_rows_per_contribution} rows per contribution; you sent {len(rows)}."}
        )
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    return _contribution_start(
        datanet=datanet, contributor=contributor, source=source, chunks=[payload],
        file_name="rows.jsonl", size_hint=len(payload),
    )


# --- Review ------------------------------------------------------------------------------------------

class Decision:
    ACCEPT = "accept"
    REJECT = "reject"
    CHOICES = (ACCEPT, REJECT)


def _require_curator(*, datanet: Datanet, actor) -> None:
    if not datanet_permissions(datanet=datanet, user=actor).can_curate:
        raise PermissionDenied("Only this Datanet's curators and owner review rows.")


def records_review(*, datanet: Datanet, reviewer, record_ids, decision: str, reason: str = "") -> int:
    """Accept or reject rows (one or a filtered selection). Returns how many rows changed.

    Rejecting needs a reason, because the contributor sees it. Re-deciding an already decided row is
    allowed (curators fix mistakes) and audited like any other decision."""
    _require_curator(datanet=datanet, actor=reviewer)
    return _records_decide(datanet=datanet, reviewer=reviewer, record_ids=record_ids, decision=decision, reason=reason)


def _records_decide(*, datanet: Datanet, reviewer, record_ids, decision: str, reason: str = "",
                    details=None) -> int:
    if decision not in Decision.CHOICES:
        raise ValidationError({"decision": "Decide 'accept' or 'reject'."})
    reason = (reason or "").strip()[:500]
    if decision == Decision.REJECT and not reason:
        raise ValidationError({"reason": "Say why the row is rejected; the contributor will see it."})
    status = RecordStatus.ACCEPTED if decision == Decision.ACCEPT else RecordStatus.REJECTED
    ids = [int(pk) for pk in record_ids]
    now = timezone.now()
    with transaction.atomic():
        records = Record.objects.select_for_update().filter(datanet=datanet, pk__in=ids).exclude(status=status)
        changed = list(records.values_list("pk", "contribution_id"))
        Record.objects.filter(pk__in=[pk for pk, _ in changed]).update(
            status=status, reason=reason if status == RecordStatus.REJECTED else "", reviewer=reviewer, reviewed_at=now
        )
        if changed:
            audit_record(
                actor=reviewer, action=f"record.{decision}", target=datanet,
                details={"records": [pk for pk, _ in changed][:1000], "count": len(changed), "reason": reason,
                         **(details or {})},
            )
        for contribution_id in {cid for _, cid in changed}:
            _contribution_settle_review(contribution_id=contribution_id)
    return len(changed)


MODERATION_REASON = "Rejected by the platform's moderators."


def records_moderate(*, moderator, record_ids, decision: str, reason: str = "") -> int:
    """Staff moderation from the Django admin: accept or reject rows of any Datanet, as a curator would
    (same rules, same audit action, marked `moderated_in_admin`). Needs staff with the permission to change
    rows (`datanets.change_record`; superusers have it). Returns how many rows changed."""
    if not (getattr(moderator, "is_staff", False) and moderator.has_perm("datanets.change_record")):
        raise PermissionDenied("Moderating rows needs staff with the permission to change rows.")
    if decision == Decision.REJECT:
        reason = (reason or "").strip() or MODERATION_REASON
    by_datanet: dict[int, list[int]] = {}
    for pk, datanet_id in Record.objects.filter(pk__in=[int(pk) for pk in record_ids]).values_list("pk", "datanet_id"):
        by_datanet.setdefault(datanet_id, []).append(pk)
    changed = 0
    with transaction.atomic():
        for datanet in Datanet.objects.filter(pk__in=by_datanet).order_by("pk"):
            changed += _records_decide(datanet=datanet, reviewer=moderator, record_ids=by_datanet[datanet.pk],
                                       decision=decision, reason=reason, details={"moderated_in_admin": True})
    return changed


def _contribution_settle_review(*, contribution_id: int) -> None:
    """A contribution is done when none of its rows wait for review; its contributor gets an email."""
    contribution = Contribution.objects.select_for_update().get(pk=contribution_id)
    pending = Record.objects.filter(contribution_id=contribution_id, status=RecordStatus.PENDING).exists()
    if contribution.state == ContributionState.IN_REVIEW and not pending:
        contribution.state = ContributionState.DONE
        contribution.reviewed_at = timezone.now()
        contribution.save(update_fields=["state", "reviewed_at"])
        from .tasks import contribution_reviewed_email_task

        contribution_reviewed_email_task.delay_on_commit(contribution.pk)


def contribution_reviewed_email_send(*, contribution_id: int) -> None:
    from django.core.mail import send_mail

    contribution = Contribution.objects.select_related("datanet", "contributor").get(pk=contribution_id)
    counts = dict(
        Record.objects.filter(contribution=contribution).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    send_mail(
        subject=f"Your contribution to {contribution.datanet.name} has been reviewed",
        message=(
            f"Hello {contribution.contributor.public_name},\n\n"
            f"Curators finished reviewing contribution #{contribution.pk} ({contribution.file_name}) to "
            f"{contribution.datanet.name}: {counts.get(RecordStatus.ACCEPTED, 0)} rows accepted, "
            f"{counts.get(RecordStatus.REJECTED, 0)} rejected.\n\n"
            f"See each row and the reasons: {settings.SITE_URL}{contribution.get_absolute_url()}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[contribution.contributor.email],
    )


# --- Training access ---------------------------------------------------------------------------------

def access_request_create(*, datanet: Datanet, requester, message: str = "") -> TrainingAccessRequest:
    perms = datanet_permissions(datanet=datanet, user=requester)
    if not perms.can_view:
        raise PermissionDenied("No such Datanet.")
    if perms.can_train:
        raise ValidationError("You can already train on this Datanet; no request is needed.")
    with transaction.atomic():
        request, created = TrainingAccessRequest.objects.get_or_create(
            datanet=datanet, requester=requester, defaults={"message": (message or "")[:2000]}
        )
        if not created and request.state == AccessState.REFUSED:
            raise ValidationError("The owner refused an earlier request. Contact them before asking again.")
        if created:
            audit_record(actor=requester, action="datanet.access_request", target=request, details={"datanet": datanet.slug})
    return request


def access_request_decide(*, access_request: TrainingAccessRequest, actor, approve: bool) -> TrainingAccessRequest:
    if not datanet_permissions(datanet=access_request.datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner decides on training access.")
    with transaction.atomic():
        request = TrainingAccessRequest.objects.select_for_update().get(pk=access_request.pk)
        request.state = AccessState.APPROVED if approve else AccessState.REFUSED
        request.decided_by = actor
        request.decided_at = timezone.now()
        request.save(update_fields=["state", "decided_by", "decided_at"])
        audit_record(actor=actor, action=f"datanet.access_{request.state}", target=request, details={"requester": request.requester_id})
    return request


# --- Validation (runs in a Celery task) --------------------------------------------------------------

PROGRESS_EVERY_S = 0.5
# The progress bar's share of each phase: parsing reads bytes up to 80%, screening reaches 95%, the
# commit 100%. A bar stuck at 100% while rows are still being stored would say the job hangs.
PROGRESS_PARSE_SHARE = 0.8
PROGRESS_SCREEN_SHARE = 0.95
DB_BATCH = 2000
VALIDATION_LABEL = "upload validation"  # names the job in messages and logs (`lineage.jobs`)


def _ingest_limits() -> IngestLimits:
    return IngestLimits(
        max_upload_bytes=settings.DATANETS_MAX_UPLOAD_BYTES,
        max_decompressed_bytes=settings.DATANETS_MAX_DECOMPRESSED_BYTES,
        max_gzip_ratio=settings.DATANETS_MAX_GZIP_RATIO,
        max_line_bytes=settings.DATANETS_MAX_LINE_BYTES,
    )


def _near_dup_cache_path(datanet: Datanet) -> Path:
    return Path(settings.DATANETS_CACHE_DIR) / f"neardup-{datanet.pk}.npz"


def near_dup_index_load(*, datanet: Datanet) -> NearDupIndex:
    """The Datanet's MinHash index of every stored row, cached on local disk and caught up from the
    database (rows with ids past the cached high-water mark), so a lost or stale cache file only costs
    a rebuild, never a missed duplicate."""
    path = _near_dup_cache_path(datanet)
    index, high_water = None, 0
    if path.exists():
        try:
            index = NearDupIndex.load(path)
            high_water = int(path.with_suffix(".hwm").read_text())
        except (OSError, ValueError):
            index, high_water = None, 0
    # The cache must hold exactly the rows up to its high-water mark. It does not when another upload
    # committed rows below the mark that this cache never saw (two validations of one Datanet at once),
    # or after rows were deleted or the database restored: then it is rebuilt.
    if index is not None and len(index) != Record.objects.filter(datanet=datanet, pk__lte=high_water).count():
        index, high_water = None, 0
    # A threshold of 1.0 (exact copies only) is searched at 0.99: LSH needs a threshold below one.
    wanted = (min(datanet.near_dup_threshold, 0.99), settings.DATANETS_NEAR_DUP_NUM_PERM,
              settings.DATANETS_NEAR_DUP_SHINGLE_SIZE)
    if index is None or (index.threshold, index.num_perm, index.shingle_size) != wanted:
        threshold, num_perm, shingle_size = wanted
        index = NearDupIndex(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size)
        high_water = 0
    schema = datanet.schema
    missing = Record.objects.filter(datanet=datanet, pk__gt=high_water).values_list("pk", "fields").order_by("pk")
    index.add_many((pk, schema.comparison_text(fields)) for pk, fields in missing.iterator(chunk_size=DB_BATCH) if pk not in index)
    return index


def near_dup_index_save(*, datanet: Datanet, index: NearDupIndex) -> None:
    path = _near_dup_cache_path(datanet)
    path.parent.mkdir(parents=True, exist_ok=True)
    high_water = max((pk for pk in index.row_ids if isinstance(pk, int)), default=0)
    tmp = path.with_suffix(".tmp.npz")
    index.save(tmp)
    tmp.replace(path)  # atomic: a reader never sees half a file
    path.with_suffix(".hwm").write_text(str(high_water))


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
        audit_record(actor=None, action="contribution.failed", target=contribution, details={"code": code})
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
        stream = iter_rows(fh, contribution.file_name, schema, _ingest_limits(), total_bytes=contribution.size_bytes)
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
    Contribution.objects.filter(pk=contribution.pk).update(
        progress_done=int(contribution.progress_total * PROGRESS_SCREEN_SHARE))
    # The cached index may name rows that no longer exist (a restored database): link only live rows.
    linked = {r.near_duplicate_of_id for r in records if r.near_duplicate_of_id}
    live = set(Record.objects.filter(datanet=datanet, pk__in=linked).values_list("pk", flat=True)) if linked else set()
    for record in records:
        if record.near_duplicate_of_id and record.near_duplicate_of_id not in live:
            record.near_duplicate_of_id = record.near_duplicate_score = None
    with transaction.atomic():
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
            actor=None, action="contribution.validated", target=contribution,
            details={"accepted": len(records), "rejected": contribution.rows_rejected, "duplicates": contribution.rows_duplicate},
        )
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


# --- Versions ----------------------------------------------------------------------------------------

VERSION_FILES = (MANIFEST_NAME, DATA_NAME)


def _version_prefix(datanet: Datanet, version_id: str) -> str:
    return f"datanets/{datanet.pk}/versions/{version_id}"


@contextmanager
def version_files_local(*, version: DatanetVersion):
    """A local directory holding the version's files: the storage path itself for local storage,
    a temporary download for object storage."""
    try:
        local = Path(default_storage.path(f"{version.storage_prefix}/{MANIFEST_NAME}")).parent
    except NotImplementedError:
        local = None
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="lineage-version-") as tmp:
        for name in VERSION_FILES:
            with default_storage.open(f"{version.storage_prefix}/{name}", "rb") as src, open(Path(tmp) / name, "wb") as dst:
                for chunk in iter(lambda: src.read(HASH_CHUNK), b""):
                    dst.write(chunk)
        yield Path(tmp)


def _near_duplicate_clusters(records) -> dict[str, int]:
    """Row id -> cluster root for rows linked as near duplicates, so attribution credits a cluster once."""
    parent = {pk: near for pk, near in records if near is not None}

    def root(pk):
        seen = set()
        while pk in parent and pk not in seen:
            seen.add(pk)
            pk = parent[pk]
        return pk

    members = {pk for pk, _ in records}
    return {str(pk): root(pk) for pk in parent if root(pk) in members}


def version_publish(*, datanet: Datanet, actor, notes: str = "") -> DatanetVersion:
    """Freeze the accepted rows into an immutable version (Parquet + manifest, sha256 identity)."""
    _require_curator(datanet=datanet, actor=actor)
    accepted = Record.objects.filter(datanet=datanet, status=RecordStatus.ACCEPTED).order_by("pk")
    ids_and_links = list(accepted.values_list("pk", "near_duplicate_of_id"))
    if not ids_and_links:
        raise ValidationError("Nothing to publish yet: accept some rows in the review queue first.")
    latest = datanet.versions.order_by("-number").first()
    if latest is not None and sorted(latest.manifest["rows_by_contributor_flat"]) == [pk for pk, _ in ids_and_links]:
        raise ValidationError(f"The accepted rows are exactly those of v{latest.number}; there is nothing new to publish.")
    number = (latest.number if latest else 0) + 1
    schema = datanet.schema
    meta = {
        "datanet": datanet.slug,
        "number": number,
        "licence": datanet.licence,
        "notes": (notes or "")[:2000],
        "near_duplicate_clusters": _near_duplicate_clusters(ids_and_links),
    }
    rows = (
        VersionRow(row_id=pk, contributor_id=str(contributor_id), fields=fields, content_hash=content_hash_value)
        for pk, contributor_id, fields, content_hash_value in accepted.values_list(
            "pk", "contributor_id", "fields", "content_hash"
        ).iterator(chunk_size=DB_BATCH)
    )
    with tempfile.TemporaryDirectory(prefix="lineage-publish-") as tmp:
        manifest = write_version(rows, tmp, schema, meta)
        prefix = _version_prefix(datanet, manifest.version_id)
        for name in VERSION_FILES:
            target = f"{prefix}/{name}"
            if default_storage.exists(target):
                default_storage.delete(target)  # left by a publish that crashed before its commit
            with open(Path(tmp) / name, "rb") as fh:
                default_storage.save(target, File(fh))
    body = dict(manifest.body)
    body["rows_by_contributor_flat"] = manifest.row_ids
    with transaction.atomic():
        Datanet.objects.select_for_update().get(pk=datanet.pk)  # serialise concurrent publishes
        if DatanetVersion.objects.filter(datanet=datanet, number=number).exists():
            raise ValidationError("Another curator published at the same moment; reload and try again.")
        version = DatanetVersion.objects.create(
            datanet=datanet, number=number, manifest_hash=manifest.version_id, storage_prefix=prefix,
            manifest=body, row_count=manifest.row_count, contributor_count=len(manifest.rows_by_contributor),
            notes=meta["notes"], created_by=actor,
        )
        VersionRecord.objects.bulk_create(
            [VersionRecord(version=version, record_id=pk) for pk in manifest.row_ids], batch_size=DB_BATCH
        )
        audit_record(
            actor=actor, action="datanet.version_publish", target=version,
            details={"datanet": datanet.slug, "number": number, "hash": manifest.version_id, "rows": manifest.row_count},
        )
    return version


@dataclass(frozen=True)
class VersionCheck:
    ok: bool
    problems: tuple[str, ...]


def version_verify(*, version: DatanetVersion, actor=None) -> VersionCheck:
    """Re-derive the version's identity from its stored files and its rows in the database."""
    try:
        with version_files_local(version=version) as directory:
            result = verify_version(directory, expected_version_id=version.manifest_hash)
            problems = list(result.problems)
            if result.ok:
                stored_ids = sorted(VersionManifest.load(directory).row_ids)
                db_ids = sorted(version.records.values_list("pk", flat=True))
                if stored_ids != db_ids:
                    problems.append("the rows recorded in the database differ from the version's files")
    except (OSError, FileNotFoundError) as exc:
        problems = [f"the version's files cannot be read: {exc}"]
    check = VersionCheck(ok=not problems, problems=tuple(problems))
    with transaction.atomic():
        if check.ok:
            DatanetVersion.objects.filter(pk=version.pk).update(verified_at=timezone.now())
        audit_record(actor=actor, action="datanet.version_verify", target=version, details={"ok": check.ok, "problems": problems})
    return check


def version_diff(*, a: DatanetVersion, b: DatanetVersion) -> dict:
    """Rows added and removed from a to b, overall and per contributor (by username)."""
    if a.datanet_id != b.datanet_id:
        raise ValidationError("Both versions must belong to the same Datanet.")
    manifest_a = VersionManifest.from_bytes(canonical_json(_engine_body(a)))
    manifest_b = VersionManifest.from_bytes(canonical_json(_engine_body(b)))
    diff = diff_versions(manifest_a, manifest_b)
    from django.contrib.auth import get_user_model

    ids = {int(c) for c in (*diff.added_by_contributor, *diff.removed_by_contributor)}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    return {
        "from": a.number,
        "to": b.number,
        "added": len(diff.added_row_ids),
        "removed": len(diff.removed_row_ids),
        "added_row_ids": diff.added_row_ids,
        "removed_row_ids": diff.removed_row_ids,
        "added_by_contributor": {names.get(int(c), c): n for c, n in diff.added_by_contributor.items()},
        "removed_by_contributor": {names.get(int(c), c): n for c, n in diff.removed_by_contributor.items()},
    }


def _engine_body(version: DatanetVersion) -> dict:
    return {k: v for k, v in version.manifest.items() if k != "rows_by_contributor_flat"}


EXPORT_TYPES = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}


def version_export(*, version: DatanetVersion, fmt: str):
    """(content type, file name, byte iterator) for a download; CSV cells that look like formulas are
    neutralised by the engine."""
    if fmt not in EXPORT_TYPES:
        raise ValidationError({"format": f"Choose one of: {', '.join(EXPORT_TYPES)}."})
    content_type, extension = EXPORT_TYPES[fmt]
    filename = f"{version.datanet.slug}-v{version.number}.{extension}"

    def stream():
        with version_files_local(version=version) as directory:
            yield from export_version(directory, fmt)

    return content_type, filename, stream()


def records_flag_mislabeled(*, scores: dict) -> int:
    """Mark rows that attribution's data valuation found likely mislabeled (`scores`: row uid `r<pk>` →
    validation-harm score) so they show in the review queue's `flag=mislabeled` filter. Returns how many."""
    by_pk = {int(uid[1:]): float(score) for uid, score in scores.items()
             if isinstance(uid, str) and uid.startswith("r") and uid[1:].isdigit()}
    with transaction.atomic():
        records = list(Record.objects.select_for_update().filter(pk__in=by_pk))
        for record in records:
            record.quality = {**(record.quality or {}), "mislabel_score": round(by_pk[record.pk], 6)}
        Record.objects.bulk_update(records, ["quality"], batch_size=DB_BATCH)
        by_datanet: dict[int, list[int]] = {}
        for record in records:
            by_datanet.setdefault(record.datanet_id, []).append(record.pk)
        for datanet_id, pks in by_datanet.items():
            audit_record(actor=None, action="record.flag_mislabeled", object_type="datanets.datanet",
                         object_id=datanet_id, details={"records": pks[:1000], "count": len(pks)})
    return len(records)
