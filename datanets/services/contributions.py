"""Receiving a contribution: a file or JSON rows is checked against the contributor's quota, stored once
under its sha256 and queued for validation (`validation.contribution_validate`) on commit."""

import hashlib
import json
import re
import tempfile
import zipfile
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.services import AuditAction, audit_record

from ..models import Contribution, ContributionSource, Datanet, TaskType
from ..selectors import datanet_permissions
from .constants import HASH_CHUNK
from .stake_quota import stake_quota_check_upload


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


def _contribution_start(*, datanet: Datanet, contributor, source: str, chunks, file_name: str, size_hint: int,
                        row_count: int | None = None) -> Contribution:
    perms = datanet_permissions(datanet=datanet, user=contributor)
    if not perms.can_contribute:
        raise PermissionDenied("Only members may contribute to this Datanet." if perms.can_view else "No such Datanet.")
    # A Datanet may require a stake to contribute (issue #20): an account then costs what it stakes, and
    # rows curators reject as spam are slashed from it. Asked through a hook: governance reads datanets.
    from lineage.hooks import stake_allows_contribution

    allowed, reason = stake_allows_contribution(user=contributor, datanet=datanet)
    if not allowed:
        raise PermissionDenied(reason)
    if size_hint == 0:
        raise ValidationError("The file is empty. " + ("Choose a document with text in it."
                                                       if datanet.task_type == TaskType.DOCUMENTS else
                                                       "Choose a file with a header row and at least one data row."))
    _check_quota(contributor=contributor, size=size_hint)
    # In a staked Datanet the rows per day scale with the stake (`stake_quota`); `row_count` is known for JSON rows.
    stake_quota_check_upload(datanet=datanet, contributor=contributor, incoming_rows=row_count)
    sha, storage_name, size = _store_content_addressed(chunks)
    from ..tasks import contribution_validate_task

    with transaction.atomic():
        contribution = Contribution.objects.create(
            datanet=datanet, contributor=contributor, source=source, file_sha256=sha,
            file_name=_safe_display_name(file_name), storage_name=storage_name, size_bytes=size, progress_total=size,
        )
        audit_record(
            actor=contributor, action=AuditAction.CONTRIBUTION_CREATE, target=contribution,
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
    if datanet.task_type == TaskType.DOCUMENTS:
        raise ValidationError({"rows": "This Datanet takes documents, not rows: upload .txt, .md, .html, .pdf or "
                                       ".docx files (or a .zip of them) and they are split into passages."})
    if not isinstance(rows, list) or not rows:
        raise ValidationError({"rows": "Send a non-empty list of row objects."})
    if len(rows) > datanet.max_rows_per_contribution:
        raise ValidationError(
            {"rows": f"At most {datanet.max_rows_per_contribution} rows per contribution; you sent {len(rows)}."}
        )
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    return _contribution_start(
        datanet=datanet, contributor=contributor, source=source, chunks=[payload],
        file_name="rows.jsonl", size_hint=len(payload), row_count=len(rows),
    )


def contribution_create_from_documents(*, datanet: Datanet, contributor, uploaded_files,
                                       source: str = ContributionSource.UPLOAD) -> Contribution:
    """One contribution of one or several documents to a Documents Datanet. One file is stored as it is;
    several are stored together as one zip (stored, not compressed again), which validation reads member by
    member (`datanets.ingest.document_rows`): a document it cannot read costs only itself."""
    files = list(uploaded_files or [])
    if datanet.task_type != TaskType.DOCUMENTS:
        raise ValidationError({"file": "This Datanet takes rows, not documents: upload one CSV, TSV, JSON Lines or "
                                       "Parquet file."})
    if not files:
        raise ValidationError({"file": "Choose at least one document to upload."})
    if len(files) == 1:
        return contribution_create_from_file(datanet=datanet, contributor=contributor, uploaded_file=files[0],
                                             source=source)
    if len(files) > settings.DATANETS_MAX_DOCUMENTS_PER_UPLOAD:
        raise ValidationError({"file": f"Upload at most {settings.DATANETS_MAX_DOCUMENTS_PER_UPLOAD} documents at a "
                                       f"time; you chose {len(files)}."})
    with tempfile.TemporaryFile() as bundle:
        _documents_zip(files, bundle)
        size = bundle.tell()
        bundle.seek(0)
        return _contribution_start(
            datanet=datanet, contributor=contributor, source=source,
            chunks=iter(lambda: bundle.read(HASH_CHUNK), b""), file_name=f"{len(files)} documents.zip", size_hint=size,
        )


def _documents_zip(files, out) -> None:
    """Write the uploaded files into `out` as a zip, each under its display name (made unique), streamed
    in chunks; refused past the upload size limit as it grows."""
    names: set[str] = set()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for uploaded in files:
            name = _safe_display_name(uploaded.name)
            stem, dot, suffix = name.partition(".")
            unique, n = name, 2
            while unique in names:
                unique, n = f"{stem} ({n}){dot}{suffix}", n + 1
            names.add(unique)
            with archive.open(unique, "w", force_zip64=True) as member:
                for chunk in uploaded.chunks(HASH_CHUNK):
                    member.write(chunk)
            if out.tell() > settings.DATANETS_MAX_UPLOAD_BYTES:
                raise ValidationError({"file": f"These documents are larger than the "
                                               f"{settings.DATANETS_MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit together. "
                                               "Upload fewer at a time."})
