"""The streaming ingestion API: one :class:`RowResult` per row of an upload, in file order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from .errors import IngestError, Rejection, RejectionCode
from .limits import IngestLimits
from .normalise import content_hash
from .readers import (
    REPORTED_CONTENT_CHARS,
    RawRecord,
    ReadContext,
    read_delimited,
    read_json_objects,
    read_jsonl,
    read_parquet,
)
from .schema import DatanetSchema
from .sniff import FileFormat, sniff_format
from .streams import ByteSource, iter_gunzipped, iter_physical_lines, spool
from .validate import Fields, RowInvalid, validate_values

RowId = int | str


@dataclass(frozen=True, slots=True)
class RowFlag:
    """Something a curator should look at on an accepted row (it is not a reason to reject it).

    ``kind`` is ``label_conflict`` (same content, other label) or ``near_duplicate``; the other row is
    either an existing Datanet row (``existing_row_id``) or an earlier row of the same upload
    (``upload_row_number``).
    """

    kind: str
    message: str
    existing_row_id: RowId | None = None
    upload_row_number: int | None = None
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome for one row.

    ``row_number`` counts data rows from 1 (blank lines and the header are not rows). ``line_number``
    is the physical line where the record starts for text formats, None for Parquet and JSON bodies.
    Exactly one of ``fields`` (accepted) and ``rejection`` is set. A rejected row carries ``content``:
    what it held, as short strings (its values as read, or its raw text under ``"raw"`` when it could
    not be parsed), so a report of rejected rows can show each one; None when nothing could be read.
    Messages name a row by :attr:`where`, the contributor's own numbering; ``location`` replaces it where
    rows come from something other than lines (a passage of a document: "“guide.pdf”, p. 3").
    """

    row_number: int
    line_number: int | None
    fields: Fields | None = None
    content_hash: str | None = None
    rejection: Rejection | None = None
    flags: tuple[RowFlag, ...] = ()
    content: Mapping[str, str] | None = None
    location: str | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None

    @property
    def where(self) -> str:
        """"line 7" (the line of the file where the row starts) or, without lines, "row 7"; the
        ``location`` when the reader gave one."""
        return self.location or where(self.row_number, self.line_number)


def where(row_number: int, line_number: int | None) -> str:
    return f"line {line_number}" if line_number is not None else f"row {row_number}"


def content_preview(values: Mapping[str, Any] | None) -> dict[str, str] | None:
    """A rejected row's values as strings of at most ``REPORTED_CONTENT_CHARS`` characters each (lists
    and objects as JSON), for reports; None for no values."""
    if not values:
        return None
    shown = {}
    for key, value in list(values.items())[:64]:
        if value is None:
            text = ""
        elif isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError, RecursionError):
                text = repr(value)
        if len(text) > REPORTED_CONTENT_CHARS:
            text = text[: REPORTED_CONTENT_CHARS - 1] + "…"
        shown[str(key)[:100]] = text.encode("utf-8", "replace").decode("utf-8")
    return shown


class RowStream(Iterator[RowResult]):
    """Iterator over an upload's row results that also reports progress and file-level notes.

    ``notes`` (ignored columns, a misleading file name) is complete once iteration has finished.
    ``bytes_read``/``total_bytes`` drive a progress bar; ``total_bytes`` is None when the size of the
    upload is unknown.
    """

    def __init__(
        self,
        records: Iterator[RawRecord],
        ctx: ReadContext,
        source: ByteSource | None = None,
        file_format: FileFormat | None = None,
        gzipped: bool = False,
    ) -> None:
        self.format = file_format
        self.gzipped = gzipped
        self.notes = ctx.notes
        self.accepted_count = 0
        self.rejected_count = 0
        self._source = source
        self._ctx = ctx
        self._results = self._generate(records)

    @property
    def total_bytes(self) -> int | None:
        return self._source.total_bytes if self._source else None

    @property
    def bytes_read(self) -> int:
        return self._source.progress_bytes if self._source else 0

    @property
    def progress(self) -> float | None:
        """Fraction done in [0, 1], or None when the upload's size is unknown."""
        total = self.total_bytes
        return min(self.bytes_read / total, 1.0) if total else None

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> RowResult:
        return next(self._results)

    def _generate(self, records: Iterator[RawRecord]) -> Iterator[RowResult]:
        schema = self._ctx.schema
        max_rows = min(self._ctx.limits.max_rows, schema.max_rows_per_contribution)
        row_number = 0
        for record in records:
            row_number += 1
            where = f"Line {record.line_number}" if record.line_number is not None else f"Row {row_number}"
            if row_number > max_rows:
                self.rejected_count += 1
                yield RowResult(
                    row_number,
                    record.line_number,
                    rejection=Rejection(
                        RejectionCode.TOO_MANY_ROWS,
                        f"{where}: a contribution may hold at most {max_rows:,} rows; this row and the rest of "
                        "the file were not read. Split the file and upload the rest separately.",
                    ),
                    content=content_preview(record.values if record.values is not None else record.content),
                )
                return
            result = self._result(record, row_number, where)
            if result.accepted:
                self.accepted_count += 1
            else:
                self.rejected_count += 1
            yield result
        if row_number == 0:
            raise IngestError("no_rows", "This file contains no data rows.")

    def _result(self, record: RawRecord, row_number: int, where: str) -> RowResult:
        schema = self._ctx.schema
        if record.values is None:
            code, detail = record.rejection_code, record.detail
        else:
            try:
                fields = validate_values(record.values, schema)
            except RowInvalid as invalid:
                code, detail = invalid.code, invalid.detail
            else:
                return RowResult(row_number, record.line_number, fields, content_hash(fields, schema))
        # Encoding messages already name their line ("bad encoding at line N").
        message = (
            detail if code is RejectionCode.BAD_ENCODING and record.line_number else f"{where}: {detail}"
        )
        content = content_preview(record.values if record.values is not None else record.content)
        return RowResult(row_number, record.line_number, rejection=Rejection(code, message), content=content)


def iter_rows(
    fileobj: BinaryIO,
    filename: str,
    schema: DatanetSchema,
    limits: IngestLimits | None = None,
    *,
    total_bytes: int | None = None,
) -> RowStream:
    """Read an uploaded file (CSV, TSV, JSON Lines or Parquet, each optionally gzip) row by row.

    The format is decided from the content (see :func:`sniff_format`). File-level problems raise
    :class:`IngestError`, either here (before the first row) or during iteration. ``total_bytes``
    overrides size detection for non-seekable streams whose size the caller knows.
    """
    limits = limits or IngestLimits()
    ctx = ReadContext(schema, limits)
    source = ByteSource(fileobj, limits, total_bytes)
    sniffed = sniff_format(filename, source.head)
    ctx.notes.extend(sniffed.notes)
    chunks: Iterable[bytes] = source.chunks()
    if sniffed.gzipped:
        chunks = iter_gunzipped(chunks, limits)
    if sniffed.format is FileFormat.PARQUET:
        records = _parquet_records(fileobj, source, chunks, sniffed.gzipped, ctx)
        return RowStream(records, ctx, source, sniffed.format, sniffed.gzipped)
    lines = iter_physical_lines(chunks, limits.max_line_bytes)
    if sniffed.format is FileFormat.JSONL:
        records = read_jsonl(lines, ctx)
    else:
        records = read_delimited(lines, "\t" if sniffed.format is FileFormat.TSV else ",", ctx)
    return RowStream(records, ctx, source, sniffed.format, sniffed.gzipped)


def _parquet_records(
    fileobj: BinaryIO, source: ByteSource, chunks: Iterable[bytes], gzipped: bool, ctx: ReadContext
) -> Iterator[RawRecord]:
    # Parquet needs random access: read a seekable plain upload in place, spool anything else (the
    # spool is bounded by the upload and decompression limits that the chunk stream enforces).
    if not gzipped and source.seekable:
        fileobj.seek(source.start_position)
        yield from read_parquet(fileobj, ctx, source.report_fraction)
        return
    with spool(chunks) as spooled:
        yield from read_parquet(spooled, ctx, source.report_fraction)


def iter_json_rows(
    rows: Iterable[Any], schema: DatanetSchema, limits: IngestLimits | None = None
) -> RowStream:
    """Validate rows that arrived as JSON objects in an API request body (already parsed).

    Results carry ``line_number=None``; messages name the row number instead.
    """
    ctx = ReadContext(schema, limits or IngestLimits())
    return RowStream(read_json_objects(rows, ctx), ctx)
