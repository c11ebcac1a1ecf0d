"""Streamed encoders for rows: CSV, TSV, JSON Lines and Parquet, as an iterator of byte chunks.

An iterator of bytes plugs straight into Django's ``StreamingHttpResponse`` and into file writes, and
never holds more than one batch of rows in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Spreadsheet programs execute a cell starting with one of these as a formula (CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ENCODE_BATCH_ROWS = 1000


class ExportFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    PARQUET = "parquet"


def neutralise_formula(value: Any) -> Any:
    """Prefix ``'`` to a string a spreadsheet would run as a formula (OWASP's CSV-injection advice).

    This changes such values (``-5 degrees`` becomes ``'-5 degrees``), which is why only the
    spreadsheet-bound formats apply it and JSON Lines/Parquet exports stay byte-faithful.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _batches(records: Iterable[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    batch: list[Mapping[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= ENCODE_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _encode_delimited(
    records: Iterable[Mapping[str, Any]], columns: Sequence[str], delimiter: str, neutralise: bool
) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(columns)
    for batch in _batches(records):
        for record in batch:
            cells = ("" if record.get(c) is None else record.get(c) for c in columns)
            writer.writerow([neutralise_formula(cell) for cell in cells] if neutralise else list(cells))
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _encode_jsonl(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[bytes]:
    for batch in _batches(records):
        lines = (json.dumps({c: record.get(c) for c in columns}, ensure_ascii=False) for record in batch)
        yield ("\n".join(lines) + "\n").encode("utf-8")


class _ChunkSink:
    """Write-only file for pyarrow that hands written bytes to the caller and tracks its own offset
    (Parquet footers store absolute offsets, so ``tell`` must keep counting after each hand-off)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _encode_parquet(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[bytes]:
    sink = _ChunkSink()
    writer: pq.ParquetWriter | None = None
    for batch in _batches(records):
        data = {c: [record.get(c) for record in batch] for c in columns}
        # Column types come from the first batch; later batches are held to them.
        table = pa.table(data) if writer is None else pa.table(data, schema=writer.schema_arrow)
        if writer is None:
            writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), table.schema, compression="zstd")
        writer.write_table(table)
        yield sink.take()
    if writer is None:
        writer = pq.ParquetWriter(
            pa.PythonFile(sink, mode="w"), pa.schema([(c, pa.string()) for c in columns]), compression="zstd"
        )
    writer.close()
    yield sink.take()


def encode_records(
    records: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: ExportFormat | str,
    *,
    neutralise_formulas: bool = True,
) -> Iterator[bytes]:
    """Encode rows (mappings) as ``fmt``, yielding byte chunks; missing keys become empty/null.

    ``neutralise_formulas`` applies to CSV/TSV only (see :func:`neutralise_formula`).
    """
    fmt = ExportFormat(fmt)
    if fmt is ExportFormat.CSV:
        return _encode_delimited(records, columns, ",", neutralise_formulas)
    if fmt is ExportFormat.TSV:
        return _encode_delimited(records, columns, "\t", neutralise_formulas)
    if fmt is ExportFormat.JSONL:
        return _encode_jsonl(records, columns)
    return _encode_parquet(records, columns)
