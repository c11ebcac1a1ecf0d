"""Content-based format detection.

The extension is only a tie-breaker. When the content contradicts the name (a Parquet file renamed
``.csv``, a gzip file without ``.gz``), the file is read as what it really is and a note says so: the
contributor's data is fine, only the name is wrong, so refusing it would help nobody. Content that is
none of the supported formats (random bytes, UTF-16 text, a JSON array) is refused with an
:class:`IngestError` that says how to fix it.

Files of a known other kind (PDF, Excel and Word files, other office documents, zip and other archives,
images, web pages; gzip-compressed or not) are recognised by their content before any parsing, or by
their name when the content is binary and says nothing, and refused with code ``unsupported_format``
and a message for that kind ("PDF files are not supported: ..."), never a parser's complaint about a
header or an encoding.
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


# What to do instead, by kind of file; every message ends by naming the formats that work.
_EXPORT = "export the data as CSV (UTF-8), JSON Lines or Parquet and upload that file"
_SHEET = "export the sheet as CSV UTF-8 (one file per sheet), JSON Lines or Parquet"


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str  # "PDF files", "Excel workbooks (.xlsx)": the subject of "... are not supported"
    advice: str
    one: str = ""  # "a PDF file": what a gzip file holds

    @property
    def a(self) -> str:
        return self.one or f"a file of this kind ({self.name})"


PDF = _Kind("PDF files", f"copy the table out of the program that made the PDF, or {_EXPORT}", "a PDF file")
XLSX = _Kind("Excel workbooks (.xlsx)", f"in Excel use File › Save As › CSV UTF-8, or {_SHEET}",
             "an Excel workbook (.xlsx)")
XLS = _Kind("Excel 97-2003 workbooks (.xls)", f"in Excel use File › Save As › CSV UTF-8, or {_SHEET}",
            "an Excel 97-2003 workbook (.xls)")
ODS = _Kind("OpenDocument spreadsheets (.ods)", f"in LibreOffice use File › Save As › Text CSV (UTF-8), or {_SHEET}",
            "an OpenDocument spreadsheet (.ods)")
NUMBERS = _Kind("Apple Numbers files", f"in Numbers use File › Export To › CSV, or {_SHEET}", "an Apple Numbers file")
DOCX = _Kind("Word documents (.docx)", f"put the rows in a spreadsheet and {_SHEET}", "a Word document (.docx)")
DOC = _Kind("Word 97-2003 documents (.doc)", f"put the rows in a spreadsheet and {_SHEET}",
            "a Word 97-2003 document (.doc)")
ODT = _Kind("OpenDocument text files (.odt)", f"put the rows in a spreadsheet and {_SHEET}",
            "an OpenDocument text file (.odt)")
RTF = _Kind("Rich Text (RTF) documents", f"put the rows in a spreadsheet and {_SHEET}", "a Rich Text (RTF) document")
PPTX = _Kind("PowerPoint presentations", f"put the rows in a spreadsheet and {_SHEET}", "a PowerPoint presentation")
OFFICE_BINARY = _Kind("Microsoft Office 97-2003 files", f"open it and {_SHEET}", "a Microsoft Office 97-2003 file")
ZIP = _Kind("Zip archives", "unzip it and upload the CSV, JSON Lines or Parquet file inside (gzip compression is fine)",
            "a zip archive")
ARCHIVE = _Kind("7z, RAR, xz and bzip2 archives",
                "extract the CSV, JSON Lines or Parquet file and upload it, compressed with gzip if you like",
                "another archive (7z, RAR, xz or bzip2)")
SQLITE = _Kind("SQLite databases", f"{_EXPORT} (e.g. sqlite3 -csv -header db.sqlite 'SELECT ...')",
               "an SQLite database")
HTML = _Kind("Web pages (HTML)", f"download the sheet itself rather than the page that shows it: {_SHEET}",
             "a web page (HTML)")
XML = _Kind("XML files", _EXPORT, "an XML file")
BINARY = _Kind("Binary files", _EXPORT, "binary data")
ZIP = _Kind("Zip archives", "unzip it and upload the CSV, JSON Lines or Parquet file inside (gzip compression is fine)", one="a zip archive")
ARCHIVE = _Kind("7z, RAR, xz and bzip2 archives", "extract the CSV, JSON Lines or Parquet file and upload it, "
                "compressed with gzip if you like", one="another archive (7z, RAR, xz or bzip2)")
SQLITE = _Kind("SQLite databases", f"{_EXPORT} (e.g. sqlite3 -csv -header db.sqlite 'SELECT ...')", one="an SQLite database")
HTML = _Kind("Web pages (HTML)", f"download the sheet itself rather than the page that shows it: {_SHEET}", one="a web page (HTML)")
XML = _Kind("XML files", _EXPORT, one="an XML file")
BINARY = _Kind("Binary files", _EXPORT, one="binary data")


def _image(fmt: str) -> _Kind:
    return _Kind(f"Images ({fmt})", f"a Datanet holds rows of text: {_EXPORT}", f"an image ({fmt})")


_MAGIC: tuple[tuple[bytes, _Kind], ...] = (
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", _image("PNG")),
    (b"\xff\xd8\xff", _image("JPEG")),
    (b"GIF87a", _image("GIF")),
    (b"GIF89a", _image("GIF")),
    (b"II*\x00", _image("TIFF")),
    (b"MM\x00*", _image("TIFF")),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OFFICE_BINARY),
    (b"{\\rtf", RTF),
    (b"7z\xbc\xaf\x27\x1c", ARCHIVE),
    (b"Rar!\x1a\x07", ARCHIVE),
    (b"\xfd7zXZ\x00", ARCHIVE),
    (b"BZh91AY&SY", ARCHIVE),
    (b"SQLite format 3\x00", SQLITE),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# Names inside a zip that tell an office document from a plain archive (each part's name is stored in
# its local header, so the first kilobytes show them).
_ZIP_MEMBERS: tuple[tuple[bytes, _Kind], ...] = (
    (b"xl/", XLSX),
    (b"word/", DOCX),
    (b"ppt/", PPTX),
    (b"application/vnd.oasis.opendocument.spreadsheet", ODS),
    (b"application/vnd.oasis.opendocument.text", ODT),
    (b"Index/Document.iwa", NUMBERS),
)
# When the content is binary and says nothing more, the name tells what it probably is.
_NAMED_KINDS: dict[str, _Kind] = {
    ".pdf": PDF, ".xlsx": XLSX, ".xlsm": XLSX, ".xls": XLS, ".ods": ODS, ".numbers": NUMBERS, ".docx": DOCX,
    ".doc": DOC, ".odt": ODT, ".rtf": RTF, ".pptx": PPTX, ".ppt": OFFICE_BINARY, ".zip": ZIP, ".7z": ARCHIVE,
    ".rar": ARCHIVE, ".xz": ARCHIVE, ".bz2": ARCHIVE, ".sqlite": SQLITE, ".db": SQLITE, ".png": _image("PNG"),
    ".jpg": _image("JPEG"), ".jpeg": _image("JPEG"), ".gif": _image("GIF"), ".webp": _image("WebP"),
    ".heic": _image("HEIC"), ".tif": _image("TIFF"), ".tiff": _image("TIFF"), ".bmp": _image("BMP"),
}
_OFFICE_BINARY_BY_NAME = {".xls": XLS, ".doc": DOC}


def _content_kind(head: bytes, filename: str) -> _Kind | None:
    """The kind of unsupported file these first bytes are, or None when they are none that is known."""
    suffix = _last_suffix(filename)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return _OFFICE_BINARY_BY_NAME.get(suffix, kind) if kind is OFFICE_BINARY else kind
    if head.startswith(_ZIP_MAGIC):
        for member, kind in _ZIP_MEMBERS:
            if member in head:
                return kind
        named = _NAMED_KINDS.get(suffix)
        return named if named in (XLSX, DOCX, PPTX, ODS, ODT, NUMBERS) else ZIP
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _image("WebP")
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return _image("HEIC/AVIF")
    text = head.removeprefix(UTF8_BOM).lstrip()[:64].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return HTML
    if text.startswith(b"<?xml"):
        return XML
    return None


def _last_suffix(filename: str) -> str:
    suffixes = [s.lower() for s in PurePosixPath(filename.replace("\\", "/")).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _unsupported(kind: _Kind, gzipped: bool) -> IngestError:
    inside = f"This gzip file contains {kind.a}. " if gzipped else ""
    return IngestError(
        "unsupported_format",
        f"{inside}{kind.name} are not supported: {kind.advice}. Lineage reads CSV, TSV, JSON Lines and Parquet "
        "files, optionally gzip-compressed.",
    )


def _looks_binary(sample: bytes) -> bool:
    """Control bytes that no text file holds (NUL aside, which UTF-16 text is full of)."""
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x00))
    return controls > max(1, 0.02 * len(sample)) or (b"\x00" in sample and not _looks_utf16(sample))


def _looks_utf16(sample: bytes) -> bool:
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    even, odd = sample[0::2], sample[1::2]
    return max(even.count(0), odd.count(0)) > 0.3 * max(len(even), 1)


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
    if _looks_utf16(sample):
        raise IngestError(
            "not_utf8",
            "This file is UTF-16 text, not UTF-8. Save it as CSV UTF-8, JSON Lines or Parquet and upload it "
            "again.",
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
    kind = _content_kind(head, filename)
    if kind is not None:
        raise _unsupported(kind, gzipped)
    if head.startswith(PARQUET_MAGIC):
        fmt = FileFormat.PARQUET
    else:
        if not _looks_utf16(head) and _looks_binary(head[:4096]):
            raise _unsupported(_NAMED_KINDS.get(_last_suffix(filename), BINARY), gzipped)
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
