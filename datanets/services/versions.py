"""Versions: the accepted rows frozen into immutable files (Parquet + manifest, sha256 identity) and what
is done with them: publish, verify, diff and export."""

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from datanets.ingest.normalise import canonical_json
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
from notifications import notify

from ..models import Datanet, DatanetVersion, Record, RecordStatus, VersionRecord
from ..signals import version_published
from .constants import DB_BATCH, HASH_CHUNK
from .review import require_curator

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
    require_curator(datanet=datanet, actor=actor)
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
    with transaction.atomic(durable=True):
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
            actor=actor, action=AuditAction.DATANET_VERSION_PUBLISH, target=version,
            details={"datanet": datanet.slug, "number": number, "hash": manifest.version_id, "rows": manifest.row_count},
        )
        version_published.send(sender=DatanetVersion, version=version)
        notify.event(kind="version.published", object_id=version.pk)
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
    with transaction.atomic(durable=True):
        if check.ok:
            DatanetVersion.objects.filter(pk=version.pk).update(verified_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.DATANET_VERSION_VERIFY, target=version, details={"ok": check.ok, "problems": problems})
    return check


def version_diff(*, a: DatanetVersion, b: DatanetVersion) -> dict:
    """Rows added and removed from a to b, overall and per contributor (by public name)."""
    if a.datanet_id != b.datanet_id:
        raise ValidationError("Both versions must belong to the same Datanet.")
    manifest_a = VersionManifest.from_bytes(canonical_json(_engine_body(a)))
    manifest_b = VersionManifest.from_bytes(canonical_json(_engine_body(b)))
    diff = diff_versions(manifest_a, manifest_b)
    from accounts.selectors import users_public_names

    # The public name shown for a person everywhere else (display name, else username; never an e-mail).
    ids = {int(c) for c in (*diff.added_by_contributor, *diff.removed_by_contributor)}
    names = users_public_names(user_ids=ids)
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
