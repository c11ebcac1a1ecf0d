"""Immutable published versions: deterministic Parquet + canonical ``manifest.json``.

The version id is the sha256 of ``manifest.json``'s bytes, and the manifest records the Parquet file's
sha256, so one id pins every byte of a version. The Parquet bytes depend on the pyarrow version that
wrote them; ``rows_sha256`` (a hash of the rows' canonical JSON) does not, and identifies the logical
content across writers. The engine adds no timestamps anywhere: whatever the caller puts in ``meta``
is all that distinguishes two publications of the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .export import ExportFormat, encode_records
from .normalise import canonical_json, content_hash
from .schema import DatanetSchema, TaskType

MANIFEST_NAME = "manifest.json"
DATA_NAME = "data.parquet"
MANIFEST_FORMAT = "lineage.datanet-version/1"
ROW_GROUP_ROWS = 10_000
COMPRESSION = "zstd"
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One row to publish. ``content_hash`` is recomputed from ``fields`` when not given."""

    row_id: int
    contributor_id: str
    fields: Mapping[str, str | None]
    content_hash: str | None = None


@dataclass(frozen=True)
class VersionManifest:
    """A parsed ``manifest.json`` plus its id (sha256 of the file's bytes)."""

    version_id: str
    schema: DatanetSchema
    meta: dict[str, Any]
    row_count: int
    rows_by_contributor: dict[str, list[int]]
    counts_by_label: dict[str, int]
    parquet_sha256: str
    parquet_bytes: int
    rows_sha256: str
    manifest_bytes: int
    body: dict[str, Any] = field(repr=False)

    @property
    def row_ids(self) -> list[int]:
        return sorted(row_id for ids in self.rows_by_contributor.values() for row_id in ids)

    @property
    def counts_by_contributor(self) -> dict[str, int]:
        return {contributor: len(ids) for contributor, ids in self.rows_by_contributor.items()}

    @classmethod
    def from_bytes(cls, data: bytes) -> VersionManifest:
        body = json.loads(data)
        if body.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"Not a Datanet version manifest (format {body.get('format')!r})")
        data_file = body["files"][DATA_NAME]
        return cls(
            version_id=hashlib.sha256(data).hexdigest(),
            schema=DatanetSchema.from_dict(body["schema"]),
            meta=body["meta"],
            row_count=body["row_count"],
            rows_by_contributor={c: list(ids) for c, ids in body["rows_by_contributor"].items()},
            counts_by_label=dict(body["counts_by_label"]),
            parquet_sha256=data_file["sha256"],
            parquet_bytes=data_file["bytes"],
            rows_sha256=body["rows_sha256"],
            manifest_bytes=len(data),
            body=body,
        )

    @classmethod
    def load(cls, version_dir: str | os.PathLike[str]) -> VersionManifest:
        return cls.from_bytes((Path(version_dir) / MANIFEST_NAME).read_bytes())


def _arrow_schema(schema: DatanetSchema) -> pa.Schema:
    return pa.schema(
        [("row_id", pa.int64()), ("contributor_id", pa.string()), ("content_hash", pa.string())]
        + [(column, pa.string()) for column in schema.columns]
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _RowSummary:
    """Accumulates what the manifest says about the rows; shared by writing and verification."""

    def __init__(self, schema: DatanetSchema) -> None:
        self.schema = schema
        self.rows_digest = hashlib.sha256()
        self.rows_by_contributor: dict[str, list[int]] = {}
        self.labels: Counter[str] = Counter()
        self.count = 0
        self.last_row_id: int | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        row_id = record["row_id"]
        if self.last_row_id is not None and row_id <= self.last_row_id:
            raise ValueError(
                f"rows must be in strictly ascending row_id order ({row_id} after {self.last_row_id})"
            )
        self.last_row_id = row_id
        self.count += 1
        self.rows_digest.update(canonical_json(dict(record)) + b"\n")
        self.rows_by_contributor.setdefault(record["contributor_id"], []).append(row_id)
        if self.schema.task_type is TaskType.TEXT_CLASSIFICATION:
            self.labels[record["label"]] += 1

    def manifest_part(self) -> dict[str, Any]:
        return {
            "row_count": self.count,
            "rows_by_contributor": dict(sorted(self.rows_by_contributor.items())),
            "counts_by_contributor": {c: len(ids) for c, ids in sorted(self.rows_by_contributor.items())},
            "counts_by_label": dict(sorted(self.labels.items())),
            "rows_sha256": self.rows_digest.hexdigest(),
        }


def _record(row: VersionRow, schema: DatanetSchema) -> dict[str, Any]:
    return {
        "row_id": int(row.row_id),
        "contributor_id": str(row.contributor_id),
        "content_hash": row.content_hash or content_hash(row.fields, schema),
        **{column: row.fields.get(column) for column in schema.columns},
    }


def write_version(
    rows: Iterable[VersionRow],
    out_dir: str | os.PathLike[str],
    schema: DatanetSchema,
    meta: Mapping[str, Any],
) -> VersionManifest:
    """Publish rows (in strictly ascending ``row_id`` order, streamed) as a new immutable version.

    Writes ``data.parquet`` (fixed row groups of :data:`ROW_GROUP_ROWS`, zstd, no timestamps) and
    ``manifest.json`` into ``out_dir``, which must not already hold a version. Requiring sorted input
    lets the database do the sorting (``order_by("id")``) and keeps memory to one row group.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path, data_path = out / MANIFEST_NAME, out / DATA_NAME
    if manifest_path.exists() or data_path.exists():
        raise FileExistsError(f"{out} already holds a version; versions are immutable")
    arrow_schema = _arrow_schema(schema)
    summary = _RowSummary(schema)
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(data_path, arrow_schema, compression=COMPRESSION, store_schema=True) as writer:
        for row in rows:
            record = _record(row, schema)
            summary.add(record)
            batch.append(record)
            if len(batch) == ROW_GROUP_ROWS:
                writer.write_table(
                    pa.Table.from_pylist(batch, schema=arrow_schema), row_group_size=ROW_GROUP_ROWS
                )
                batch = []
        if batch or not summary.count:
            writer.write_table(
                pa.Table.from_pylist(batch, schema=arrow_schema), row_group_size=ROW_GROUP_ROWS
            )
    body = {
        "format": MANIFEST_FORMAT,
        "schema": schema.to_dict(),
        "meta": dict(meta),
        "columns": list(arrow_schema.names),
        "parquet": {"row_group_rows": ROW_GROUP_ROWS, "compression": COMPRESSION},
        "files": {DATA_NAME: {"sha256": _file_sha256(data_path), "bytes": data_path.stat().st_size}},
        **summary.manifest_part(),
    }
    manifest_path.write_bytes(canonical_json(body))
    return VersionManifest.load(out)


def iter_version_records(version_dir: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Stream a version's rows as dicts, in row_id order, one row group at a time."""
    parquet = pq.ParquetFile(Path(version_dir) / DATA_NAME)
    for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS, use_threads=False):
        yield from batch.to_pylist()


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """``ok`` when every check passed; ``problems`` says what failed, in words."""

    ok: bool
    version_id: str | None
    problems: tuple[str, ...]


def verify_version(
    version_dir: str | os.PathLike[str], expected_version_id: str | None = None
) -> VerificationResult:
    """Recompute everything the manifest claims and compare.

    Detects: a manifest edited or re-serialised (with ``expected_version_id``, any byte change; without
    it, any disagreement with the data), a Parquet file whose bytes changed, rows whose content hash,
    ids, contributors or labels disagree with the manifest.
    """
    directory = Path(version_dir)
    problems: list[str] = []
    try:
        raw = (directory / MANIFEST_NAME).read_bytes()
        manifest = VersionManifest.from_bytes(raw)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return VerificationResult(False, None, (f"manifest unreadable: {error}",))
    if expected_version_id is not None and manifest.version_id != expected_version_id:
        problems.append(f"manifest hash {manifest.version_id} differs from the expected version id")
    if canonical_json(manifest.body) != raw:
        problems.append("manifest.json is not in canonical form (it was edited)")
    data_path = directory / DATA_NAME
    if not data_path.exists():
        return VerificationResult(False, manifest.version_id, (*problems, "data.parquet is missing"))
    if (
        data_path.stat().st_size != manifest.parquet_bytes
        or _file_sha256(data_path) != manifest.parquet_sha256
    ):
        problems.append("data.parquet does not match the sha256/size recorded in the manifest")
    summary = _RowSummary(manifest.schema)
    bad_hashes = 0
    try:
        for record in iter_version_records(directory):
            summary.add(record)
            fields = {column: record.get(column) for column in manifest.schema.columns}
            bad_hashes += record["content_hash"] != content_hash(fields, manifest.schema)
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as error:
        problems.append(f"data.parquet cannot be read back: {error}")
    else:
        recomputed = summary.manifest_part()
        for key, value in recomputed.items():
            if manifest.body.get(key) != value:
                problems.append(f"manifest '{key}' disagrees with the rows in data.parquet")
        if bad_hashes:
            problems.append(f"{bad_hashes} row(s) have a content_hash that does not match their fields")
    return VerificationResult(not problems, manifest.version_id, tuple(problems))


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """Rows added in ``b`` relative to ``a`` and removed from ``a``, overall and per contributor."""

    added_row_ids: list[int]
    removed_row_ids: list[int]
    added_by_contributor: dict[str, int]
    removed_by_contributor: dict[str, int]


def diff_versions(manifest_a: VersionManifest, manifest_b: VersionManifest) -> VersionDiff:
    """What changed from version a to version b (from manifests alone: no Parquet is read)."""

    def owners(manifest: VersionManifest) -> dict[int, str]:
        return {row_id: c for c, ids in manifest.rows_by_contributor.items() for row_id in ids}

    rows_a, rows_b = owners(manifest_a), owners(manifest_b)
    added = sorted(rows_b.keys() - rows_a.keys())
    removed = sorted(rows_a.keys() - rows_b.keys())
    return VersionDiff(
        added,
        removed,
        dict(sorted(Counter(rows_b[r] for r in added).items())),
        dict(sorted(Counter(rows_a[r] for r in removed).items())),
    )


def export_version(version_dir: str | os.PathLike[str], fmt: ExportFormat | str) -> Iterator[bytes]:
    """Stream a version as CSV/TSV (formula-neutralised), JSON Lines, or its own Parquet bytes."""
    fmt = ExportFormat(fmt)
    directory = Path(version_dir)
    if fmt is ExportFormat.PARQUET:
        return _file_chunks(directory / DATA_NAME)
    columns = VersionManifest.load(directory).body["columns"]
    return encode_records(iter_version_records(directory), columns, fmt)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            yield chunk
