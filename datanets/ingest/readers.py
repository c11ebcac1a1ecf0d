"""Format readers: each turns a byte stream into :class:`RawRecord` values keyed by canonical columns.

Readers report problems that belong to one record as a record-level rejection and keep going; they
raise :class:`IngestError` only for problems that make the rest of the file unreadable or meaningless
(no header, a required column absent from the header, a corrupt Parquet footer).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import IngestError, RejectionCode
from .limits import IngestLimits, describe_bytes
from .schema import DatanetSchema

# Parquet values are converted to Python one batch at a time; this bounds that working set.
PARQUET_BATCH_ROWS = 512
# What a rejected record's content is cut to, per value, for reporting it back.
REPORTED_CONTENT_CHARS = 1000
# Unknown JSON keys are reported in a note; past this many distinct names the list is cut short so a
# hostile file cannot grow the note without bound.
MAX_REPORTED_UNKNOWN_KEYS = 20

_PARQUET_ERRORS = (pa.ArrowException, OSError, ValueError, EOFError, NotImplementedError, UnicodeDecodeError)


@dataclass(slots=True)
class RawRecord:
    """One record as read, before validation: values keyed by canonical column name, or a rejection.

    A rejected record that could not be turned into values keeps what it held in ``content`` (its raw
    text under ``"raw"``, or the values that could be read), so the contributor can find and fix it."""

    line_number: int | None
    values: Mapping[str, Any] | None = None
    rejection_code: RejectionCode | None = None
    detail: str | None = None
    content: Mapping[str, Any] | None = None


def _raw(text: str) -> dict[str, str]:
    """The raw text of a record that could not be parsed, without its line ending; undecodable bytes
    (kept as surrogates by the CSV reader) become U+FFFD."""
    return {"raw": text.rstrip("\r\n")[:REPORTED_CONTENT_CHARS].encode("utf-8", "replace").decode("utf-8")}


@dataclass
class ReadContext:
    schema: DatanetSchema
    limits: IngestLimits
    notes: list[str] = field(default_factory=list)


def _unknown_columns_note(names: Sequence[str]) -> str:
    return f"These columns are not part of this Datanet and were ignored: {', '.join(names)}."


def map_columns(names: Sequence[str], ctx: ReadContext, where: str) -> list[tuple[int, str]]:
    """Resolve a header (CSV) or schema (Parquet) to (position, canonical column) pairs.

    Raises :class:`IngestError` for too many columns, a column given twice, or a missing required
    column: every row would fail the same way, so one clear file-level message is kinder.
    """
    if len(names) > ctx.limits.max_columns:
        raise IngestError(
            "too_many_columns",
            f"The {where} has {len(names)} columns; at most {ctx.limits.max_columns} are allowed. "
            "Remove the columns this Datanet does not use.",
        )
    mapping: list[tuple[int, str]] = []
    seen: set[str] = set()
    unknown: list[str] = []
    for position, name in enumerate(names):
        column = ctx.schema.resolve_column(name)
        if column is None:
            if name.strip():
                unknown.append(name.strip())
            continue
        if column in seen:
            raise IngestError(
                "duplicate_column", f"The {where} names the column '{column}' twice. Keep only one."
            )
        seen.add(column)
        mapping.append((position, column))
    missing = [c for c in ctx.schema.required_columns if c not in seen]
    if missing:
        found = ", ".join(n.strip() for n in names[:30]) or "(nothing)"
        raise IngestError(
            "missing_column",
            f"The {where} lacks the required column(s): {', '.join(missing)}. The columns found were: {found}. "
            f"This Datanet expects: {', '.join(ctx.schema.columns)}.",
        )
    if unknown:
        ctx.notes.append(_unknown_columns_note(unknown[:MAX_REPORTED_UNKNOWN_KEYS]))
    return mapping


def _line_too_long(line_number: int, limits: IngestLimits) -> RawRecord:
    return RawRecord(
        line_number,
        rejection_code=RejectionCode.LINE_TOO_LONG,
        detail=f"the record is longer than {describe_bytes(limits.max_line_bytes)} and was skipped",
    )


def _bad_encoding(line_number: int) -> RawRecord:
    return RawRecord(
        line_number,
        rejection_code=RejectionCode.BAD_ENCODING,
        detail=f"bad encoding at line {line_number}: the bytes are not valid UTF-8; save the file as UTF-8",
    )


class _RecordTooLong(Exception):
    pass


class _CsvLineFeeder:
    """Feeds decoded lines to ``csv.reader`` while counting lines and bounding each record's size.

    A class rather than a generator because it raises :class:`_RecordTooLong` mid-record and must
    stay usable afterwards (a generator that raised is finished); ``csv.reader`` resets its own parse
    state at the start of every record, so reading simply resumes at the next physical line.
    """

    def __init__(self, lines: Iterator[bytes | None], max_record_bytes: int) -> None:
        self._lines = lines
        self._max_record_bytes = max_record_bytes
        self.line_number = 0
        self.record_bytes = 0
        self.bad_lines: list[int] = []
        self.record_text: list[str] = []  # the current record's lines (bounded by the record limit)

    def start_record(self) -> int:
        self.record_bytes = 0
        self.bad_lines.clear()
        self.record_text = []
        return self.line_number + 1

    def __iter__(self) -> _CsvLineFeeder:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.line_number += 1
        if raw is None:
            raise _RecordTooLong
        self.record_bytes += len(raw) + 1
        if self.record_bytes > self._max_record_bytes:
            raise _RecordTooLong
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Keep the bytes (as surrogates) so the csv parser stays in sync; the record is rejected.
            text = raw.decode("utf-8", errors="surrogateescape")
            self.bad_lines.append(self.line_number)
        if self.line_number == 1:
            text = text.removeprefix("\ufeff")
        self.record_text.append(text)
        return text + "\n"  # csv needs the terminator to keep newlines inside quoted fields


def read_delimited(lines: Iterator[bytes | None], delimiter: str, ctx: ReadContext) -> Iterator[RawRecord]:
    """CSV/TSV with a required header; line numbers are the physical line where each record starts.

    ``limits.max_line_bytes`` bounds a whole record, so an unterminated quote cannot swallow the file.
    """
    feeder = _CsvLineFeeder(lines, ctx.limits.max_line_bytes)
    reader = csv.reader(feeder, delimiter=delimiter)
    header = _read_header(reader, feeder, ctx)
    mapping = map_columns(header, ctx, "header")
    while True:
        line_number = feeder.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _RecordTooLong:
            yield _line_too_long(line_number, ctx.limits)
            continue
        except csv.Error as error:
            yield RawRecord(
                line_number, rejection_code=RejectionCode.BAD_CSV, detail=f"malformed CSV ({error})",
                content=_raw("\n".join(feeder.record_text)),
            )
            continue
        if not cells:
            continue  # blank line
        if feeder.bad_lines:
            bad = _bad_encoding(feeder.bad_lines[0])
            bad.content = _raw("\n".join(feeder.record_text))
            yield bad
        elif len(cells) > len(header):
            yield RawRecord(
                line_number,
                rejection_code=RejectionCode.BAD_CSV,
                detail=f"this row has {len(cells)} fields but the header has {len(header)}; "
                "put quotes around values that contain the delimiter",
                content=_raw("\n".join(feeder.record_text)),
            )
        else:
            yield RawRecord(line_number, {column: cells[i] for i, column in mapping if i < len(cells)})


def _read_header(reader: Iterator[list[str]], feeder: _CsvLineFeeder, ctx: ReadContext) -> list[str]:
    while True:
        feeder.start_record()
        try:
            header = next(reader)
        except StopIteration:
            raise IngestError("empty_file", "This file has no header row and no data.") from None
        except _RecordTooLong:
            raise IngestError(
                "line_too_long",
                f"The header line is longer than {describe_bytes(ctx.limits.max_line_bytes)}; "
                "this does not look like a CSV file.",
            ) from None
        except csv.Error as error:
            raise IngestError("bad_csv", f"The header row is not valid CSV ({error}).") from None
        if feeder.bad_lines:
            raise IngestError("not_utf8", "The header row is not valid UTF-8. Save the file as UTF-8.")
        if header:
            return header


# A JSON string (skipped whole, escapes included) or one bracket: what nesting depth is made of.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def json_text_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether JSON text nests deeper than ``max_depth``, found by scanning, before any parsing.

    ``json.loads`` recurses in C once per level and relies on the interpreter's recursion limit to stop:
    where a library has raised that limit (pytest plugins, some ML stacks do), a line of a million
    brackets overflows the C stack and kills the worker instead of raising. Scanning first never recurses."""
    if text.count("{") + text.count("[") <= max_depth:
        return False
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        token = match.group()
        if token in ("{", "["):
            depth += 1
            if depth > max_depth:
                return True
        elif token in ("}", "]"):
            depth -= 1
    return False


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether nesting goes deeper than ``max_depth`` (a flat object has depth 1); iterative, so safe."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JsonObjectMapper:
    """Maps JSON objects' keys to canonical columns (cached per distinct key) and notes unknown keys."""

    def __init__(self, ctx: ReadContext) -> None:
        self._ctx = ctx
        self._resolved: dict[str, str | None] = {}
        self._unknown: list[str] = []

    def values(self, obj: Any) -> tuple[RejectionCode, str] | dict[str, Any]:
        limits = self._ctx.limits
        if not isinstance(obj, dict):
            return RejectionCode.WRONG_TYPE, 'each row must be a JSON object like {"text": ...}'
        if len(obj) > limits.max_columns:
            return (
                RejectionCode.TOO_MANY_COLUMNS,
                f"the object has {len(obj)} keys; at most {limits.max_columns}",
            )
        values = {}
        for key, value in obj.items():
            column = self._resolved.get(key, "")
            if column == "":
                column = self._resolved[key] = self._ctx.schema.resolve_column(key)
                if column is None and len(self._unknown) < MAX_REPORTED_UNKNOWN_KEYS:
                    self._unknown.append(key)
            if column is not None:
                values[column] = value
        return values

    def finish(self) -> None:
        if self._unknown:
            self._ctx.notes.append(_unknown_columns_note(self._unknown))


def read_jsonl(lines: Iterator[bytes | None], ctx: ReadContext) -> Iterator[RawRecord]:
    """JSON Lines: one object per line; blank lines are skipped."""
    mapper = JsonObjectMapper(ctx)
    max_depth = ctx.limits.max_json_depth
    for line_number, raw in enumerate(lines, start=1):
        if raw is None:
            yield _line_too_long(line_number, ctx.limits)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad = _bad_encoding(line_number)
            bad.content = _raw(raw.decode("utf-8", errors="replace"))
            yield bad
            continue
        if line_number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        if json_text_depth_exceeds(text, max_depth):
            yield RawRecord(
                line_number,
                rejection_code=RejectionCode.TOO_DEEP,
                detail=f"JSON nested deeper than {max_depth} levels",
                content=_raw(text),
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            yield RawRecord(
                line_number, rejection_code=RejectionCode.BAD_JSON, detail=f"not valid JSON ({error})",
                content=_raw(text),
            )
            continue
        except RecursionError:
            obj = None
            too_deep = True
        else:
            # Counting brackets is a cheap upper bound on depth; only walk objects that could be deep.
            too_deep = text.count("{") + text.count("[") > max_depth and json_depth_exceeds(obj, max_depth)
        if too_deep:
            yield RawRecord(
                line_number,
                rejection_code=RejectionCode.TOO_DEEP,
                detail=f"JSON nested deeper than {max_depth} levels",
                content=_raw(text),
            )
            continue
        values = mapper.values(obj)
        if isinstance(values, tuple):
            yield RawRecord(line_number, rejection_code=values[0], detail=values[1], content=_raw(text))
        else:
            yield RawRecord(line_number, values)
    mapper.finish()


def read_json_objects(objects: Iterable[Any], ctx: ReadContext) -> Iterator[RawRecord]:
    """Rows already parsed from a JSON request body: validated exactly like JSON Lines objects."""
    mapper = JsonObjectMapper(ctx)
    for obj in objects:
        if isinstance(obj, dict | list) and json_depth_exceeds(obj, ctx.limits.max_json_depth):
            yield RawRecord(
                None,
                rejection_code=RejectionCode.TOO_DEEP,
                detail=f"JSON nested deeper than {ctx.limits.max_json_depth} levels",
            )
            continue
        values = mapper.values(obj)
        if isinstance(values, tuple):
            yield RawRecord(None, rejection_code=values[0], detail=values[1], content=_raw(_json_text(obj)))
        else:
            yield RawRecord(None, values)
    mapper.finish()


def _json_text(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, default=str)[:REPORTED_CONTENT_CHARS]
    except (TypeError, ValueError, RecursionError):
        return repr(obj)[:REPORTED_CONTENT_CHARS]


def _bad_parquet(error: BaseException) -> IngestError:
    return IngestError(
        "bad_parquet",
        f"This Parquet file cannot be read ({type(error).__name__}: {str(error)[:200]}). Re-export it.",
    )


def _selected_parquet_columns(parquet: pq.ParquetFile, ctx: ReadContext) -> list[tuple[str, str]]:
    """(name in file, canonical column) pairs; nested columns are refused as a whole.

    Nested (list/struct/map) values are never plain Datanet values, and run-length encoding lets a few
    bytes of them describe millions of items, so they are not decoded at all.
    """
    arrow_schema = parquet.schema_arrow
    names = list(arrow_schema.names)
    selected = [(names[i], column) for i, column in map_columns(names, ctx, "Parquet schema")]
    for name, column in selected:
        if pa.types.is_nested(arrow_schema.field(name).type):
            raise IngestError(
                "wrong_column_type",
                f"The Parquet column '{name}' holds lists or structures; '{column}' must hold plain values.",
            )
    return selected


def _decode_parquet_batch(batch: pa.RecordBatch, columns: list[str], byte_cap: int) -> Iterator[RawRecord]:
    """Rows of one batch. String columns arrive dictionary-encoded so that values longer than
    ``byte_cap`` are found from the dictionary and never expanded per row: one long value repeated
    by a thousand rows costs its length once, not a thousand times."""
    decoded = []
    too_long: list[str | None] = [None] * batch.num_rows
    for position, column in enumerate(columns):
        array = batch.column(position)
        if isinstance(array, pa.DictionaryArray) and len(array.dictionary):
            oversized = pc.greater(pc.binary_length(array.dictionary), byte_cap)
            if pc.any(oversized).as_py():
                for row in pc.indices_nonzero(
                    pc.fill_null(pc.take(oversized, array.indices), False)
                ).to_pylist():
                    too_long[row] = too_long[row] or column
                empty = pa.scalar(
                    b"" if pa.types.is_binary(array.dictionary.type) else "", array.dictionary.type
                )
                array = pa.DictionaryArray.from_arrays(
                    array.indices, pc.if_else(oversized, empty, array.dictionary)
                )
        decoded.append(array.to_pylist())
    for row, values in enumerate(zip(*decoded)):
        if too_long[row] is not None:
            shown = dict(zip(columns, values))
            shown[too_long[row]] = "(far over the length limit; not shown)"
            yield RawRecord(
                None,
                rejection_code=RejectionCode.TOO_LONG,
                detail=f"'{too_long[row]}' is far over the length limit",
                content=shown,
            )
        else:
            yield RawRecord(None, dict(zip(columns, values)))


def read_parquet(
    source: BinaryIO, ctx: ReadContext, on_progress: Callable[[float], None] | None = None
) -> Iterator[RawRecord]:
    """Parquet, streamed one batch at a time after checking the footer's sizes against the limits.

    Only declared columns are decoded. ``on_progress`` receives the fraction of rows read so far.
    """
    limits = ctx.limits
    try:
        parquet = pq.ParquetFile(source)
        metadata = parquet.metadata
        group_sizes = [metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)]
        total_rows = metadata.num_rows
        selected = _selected_parquet_columns(parquet, ctx)
        text_like = [
            name
            for name, _ in selected
            if pa.types.is_string(t := parquet.schema_arrow.field(name).type)
            or pa.types.is_large_string(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
        ]
        parquet = pq.ParquetFile(source, read_dictionary=text_like)
    except _PARQUET_ERRORS as error:
        raise _bad_parquet(error) from None
    if max(group_sizes, default=0) > limits.max_parquet_row_group_bytes:
        raise IngestError(
            "row_group_too_large",
            f"This Parquet file has a row group of {describe_bytes(max(group_sizes))} (uncompressed); the limit is "
            f"{describe_bytes(limits.max_parquet_row_group_bytes)}. Write it with smaller row groups "
            "(for example pyarrow's row_group_size=10000).",
        )
    if sum(group_sizes) > limits.max_decompressed_bytes:
        raise IngestError(
            "decompressed_too_large",
            f"This Parquet file holds more than {describe_bytes(limits.max_decompressed_bytes)} of data once "
            "decoded. Split it into smaller files.",
        )
    # UTF-8 needs at most 4 bytes per character: longer values are too long whatever they contain.
    byte_cap = 4 * ctx.schema.max_field_length
    columns = [column for _, column in selected]
    rows_read = 0
    try:
        batches = parquet.iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=[name for name, _ in selected], use_threads=False
        )
        for batch in batches:
            yield from _decode_parquet_batch(batch, columns, byte_cap)
            rows_read += batch.num_rows
            if on_progress is not None and total_rows:
                on_progress(min(rows_read / total_rows, 1.0))
    except _PARQUET_ERRORS as error:
        raise _bad_parquet(error) from None
