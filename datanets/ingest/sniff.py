"""Content-based format detection.

The extension is only a tie-breaker. When the content contradicts the name (a Parquet file renamed
``.csv``, a gzip file without ``.gz``), the file is read as what it really is and a note says so: the
contributor's data is fine, only the name is wrong, so refusing it would help nobody. Content that is
none of the supported formats (random bytes, zip archives, UTF-16 text, a JSON array) is refused with
an :class:`IngestError` that says how to fix it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from .errors import IngestError

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 64 * 1024
# Above this share of undecodable characters a sample is not "UTF-8 with a few bad lines" but not
# UTF-8 at all (binary, or another encoding), and per-row rejections would just be noise.
MAX_UNDECODABLE_SHARE = 0.05


class FileFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    PARQUET = "parquet"


_EXTENSIONS = {
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.TSV,
    ".tab": FileFormat.TSV,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".json": FileFormat.JSONL,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


@dataclass(frozen=True, slots=True)
class SniffResult:
    """What a file really is. ``notes`` explain any disagreement with its name."""

    format: FileFormat
    gzipped: bool
    notes: tuple[str, ...] = ()


def _named_format(filename: str) -> tuple[FileFormat | None, bool]:
    suffixes = [s.lower() for s in PurePosixPath(filename.replace("\\", "/")).suffixes]
    named_gzip = bool(suffixes) and suffixes[-1] == ".gz"
    if named_gzip:
        suffixes = suffixes[:-1]
    return (_EXTENSIONS.get(suffixes[-1]) if suffixes else None), named_gzip


def _gunzip_head(first_bytes: bytes) -> bytes:
    """Decompress at most SNIFF_BYTES of a gzip prefix (bounded output: a bomb cannot hurt here)."""
    decompressor = zlib.decompressobj(wbits=31)
    try:
        head = decompressor.decompress(first_bytes, SNIFF_BYTES)
    except zlib.error:
        raise IngestError(
            "bad_gzip", "This file starts like a gzip file but its compressed data is corrupt. Re-create it."
        ) from None
    if not head:
        if decompressor.eof:
            raise IngestError("empty_file", "This gzip file contains no data.")
        raise IngestError(
            "truncated_gzip",
            "This gzip file ends before any data could be decompressed; the upload may be incomplete.",
        )
    return head


def _check_is_text(sample: bytes, complete: bool) -> None:
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in sample:
        raise IngestError(
            "not_utf8",
            "This file is not UTF-8 text (it looks like binary data or UTF-16). "
            "Save it as CSV UTF-8, JSON Lines or Parquet and upload it again.",
        )
    text = sample.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line of a partial sample may end inside a multi-byte character
    undecodable = text.count("\ufffd")
    if undecodable > MAX_UNDECODABLE_SHARE * len(text) or all("\ufffd" in line for line in lines):
        raise IngestError(
            "not_utf8",
            "This file is not valid UTF-8 text (it may be Latin-1/Windows-1252 or binary data). "
            "Save it with UTF-8 encoding and upload it again.",
        )


def _text_format(sample: bytes, named: FileFormat | None) -> FileFormat:
    text = sample.removeprefix(UTF8_BOM).decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        return FileFormat.JSONL
    if text.startswith("["):
        raise IngestError(
            "json_array",
            "This file is a single JSON array. Upload JSON Lines instead: one JSON object per line.",
        )
    header = text.split("\n", 1)[0]
    tabs, commas = header.count("\t"), header.count(",")
    if tabs and tabs >= commas:
        return FileFormat.TSV
    if commas:
        return FileFormat.CSV
    # A single-column header has no delimiter to go by; trust the name.
    return FileFormat.TSV if named is FileFormat.TSV else FileFormat.CSV


def sniff_format(filename: str, first_bytes: bytes) -> SniffResult:
    """Decide how to read a file from its first bytes (up to :data:`SNIFF_BYTES` are used).

    Raises :class:`IngestError` for empty files and content that is no supported format.
    """
    if not first_bytes:
        raise IngestError("empty_file", "This file is empty.")
    named, named_gzip = _named_format(filename)
    gzipped = first_bytes.startswith(GZIP_MAGIC)
    head = _gunzip_head(first_bytes) if gzipped else first_bytes[:SNIFF_BYTES]
    if head.startswith(GZIP_MAGIC):
        raise IngestError(
            "nested_compression", "This file is compressed twice. Compress it only once with gzip."
        )
    if head.startswith(b"PK\x03\x04"):
        raise IngestError(
            "unsupported_format",
            "This is a zip archive (or an Excel workbook). Upload the CSV, JSON Lines or Parquet file itself, "
            "optionally gzip-compressed.",
        )
    if head.startswith(PARQUET_MAGIC):
        fmt = FileFormat.PARQUET
    else:
        complete = len(first_bytes) < SNIFF_BYTES if not gzipped else len(head) < SNIFF_BYTES
        _check_is_text(head, complete)
        fmt = _text_format(head, named)

    notes = []
    if named is not None and named is not fmt:
        notes.append(
            f"The file is named {filename!r} but its content is {fmt.value.upper()}; it was read as such."
        )
    if gzipped != named_gzip:
        notes.append(
            "The file is gzip-compressed although its name does not end in .gz; it was decompressed."
            if gzipped
            else "The file's name ends in .gz but it is not compressed; it was read as is."
        )
    return SniffResult(fmt, gzipped, tuple(notes))
