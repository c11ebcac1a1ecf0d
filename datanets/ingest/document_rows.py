"""Document uploads as rows: every passage of every document is one :class:`~.rows.RowResult`, so a
Documents Datanet's uploads take the same duplicate screening, review queue, versions and diffs as table
rows. Only the reader differs: :func:`iter_document_rows` stands where :func:`~.rows.iter_rows` stands.

An upload is one document (``.txt``, ``.md``, ``.html``, ``.pdf``, ``.docx``, each optionally gzipped) or a
zip of documents: the contributor's own, or the one the app makes when several files are uploaded together
(a Word document is a zip too: one holding ``word/document.xml``, or any zip named like a document, is read
as a document). A document that
cannot be read:

* alone in the upload, raises its :class:`IngestError` (the upload as a whole cannot be ingested, exactly
  like a table file that cannot be parsed);
* in a zip, becomes one rejected row that names the document and carries the engine's code and message; the
  documents before and after it keep their passages.

Each passage's fields are ``text``, ``document`` (its name in the upload), ``anchor`` ("p. 3", "Setup ›
Linux" or empty), ``page`` and ``headings``, checked by the same :func:`~.validate.validate_values` as any
row; its content hash covers the text alone (:data:`~.schema.TASK_CONTENT_COLUMNS`), so the same passage in
another document, or from another contributor, is a duplicate.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from .documents import _SUFFIXES, DocumentLimits, DocumentOutcome, extract_passages
from .errors import IngestError, Rejection, RejectionCode
from .limits import MB, describe_bytes
from .normalise import content_hash
from .rows import RowResult
from .schema import DatanetSchema, TaskType
from .sniff import _ZIP_MAGIC
from .validate import RowInvalid, validate_values

DOCUMENT_SUFFIXES = tuple(sorted(_SUFFIXES))
BUNDLE_SUFFIX = ".zip"
ACCEPTED = ".txt, .md, .html, .pdf or .docx (each optionally .gz), or a .zip of such documents"
# Entries an archiver adds by itself: never documents, skipped with a note rather than refused.
_ARCHIVER_NOISE = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
_MAX_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """Bounds for a zip of documents (each document inside is bounded by :class:`DocumentLimits`).

    ``max_total_bytes`` caps what all documents of one zip may decompress to; members are read one at a
    time, each refused past ``DocumentLimits.max_file_bytes`` while it is read, so memory stays at one
    document whatever the zip's headers claim."""

    max_documents: int = 200
    max_total_bytes: int = 500 * MB
    max_entries: int = 5_000  # directory entries of any kind, checked before zipfile reads them

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"BundleLimits.{name} must be positive")


def document_name_refusal(name: str, *, in_bundle: bool = False) -> IngestError | None:
    """Why a file of this name is not taken as a document (its extension), or None.

    A name without an extension is read as whatever its content is; ``.zip`` is a bundle of documents
    at the top of an upload only (zips are not opened inside zips)."""
    suffixes = [s.lower() for s in PurePosixPath(name.replace("\\", "/")).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] in _SUFFIXES or (suffixes[-1] == BUNDLE_SUFFIX and not in_bundle):
        return None
    if suffixes[-1] == BUNDLE_SUFFIX:
        return IngestError("unsupported_format", "A zip inside a zip is not opened: put its documents in the outer "
                                                 "zip and upload it again.")
    return IngestError(
        "unsupported_format",
        f"Files ending in {suffixes[-1]} are not documents this Datanet takes: upload {ACCEPTED}. Convert it (or "
        "rename it, if its extension is wrong) and upload it again.",
    )


def display_name(name: str) -> str:
    """A document's name as shown and stored: a zip member keeps its folders; never used as a path."""
    name = "/".join(part for part in (name or "").replace("\\", "/").split("/") if part not in ("", ".", ".."))
    name = "".join(ch for ch in name if ch.isprintable())
    return name[-_MAX_NAME_CHARS:] or "document"


def _named_document(name: str) -> bool:
    suffixes = [s.lower() for s in PurePosixPath(name.replace("\\", "/")).suffixes]
    return bool(suffixes) and (suffixes[-2] if suffixes[-1] == ".gz" and len(suffixes) > 1 else suffixes[-1]) in _SUFFIXES


def _sentence(text: str) -> str:
    """``text`` with its first letter in capitals (``str.capitalize`` would lower a document's name)."""
    return text[:1].upper() + text[1:]


def _is_archiver_noise(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.startswith(_ARCHIVER_NOISE[0]) or base in _ARCHIVER_NOISE or base.startswith("._")


def _zip_damaged() -> IngestError:
    return IngestError("corrupt_zip", "This zip archive is damaged and cannot be opened. Create it again and upload it.")


def _bundle_entries(data: bytes, limits: BundleLimits) -> list[zipfile.ZipInfo] | None:
    """The zip's entries when ``data`` is a zip of documents; None when it is a single document (a Word
    document, or not a zip at all). The entry count is read from the end record before zipfile builds an
    object per entry."""
    if not data.startswith(_ZIP_MAGIC):
        return None
    stream = io.BytesIO(data)
    try:
        end_record = zipfile._EndRecData(stream)  # type: ignore[attr-defined]  # (documents.py does the same)
    except OSError:
        end_record = None
    if not end_record:
        raise _zip_damaged()
    if end_record[zipfile._ECD_ENTRIES_TOTAL] > limits.max_entries:  # type: ignore[attr-defined]
        raise IngestError(
            "too_many_entries",
            f"This zip holds more than {limits.max_entries:,} entries. Upload at most "
            f"{limits.max_documents} documents at a time.",
        )
    try:
        with zipfile.ZipFile(stream) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise _zip_damaged() from None
    if any(entry.filename == "word/document.xml" for entry in entries):
        return None  # a Word document: the document reader checks it against its own limits
    return entries


class DocumentRowStream(Iterator[RowResult]):
    """Row results of a document upload, one per passage (or per document that could not be read), in
    order; reports progress like :class:`~.rows.RowStream`.

    ``notes`` is complete once iteration has finished. ``documents_read`` and ``documents_refused`` count
    documents; ``accepted_count``/``rejected_count`` count rows."""

    def __init__(
        self,
        source: bytes | BinaryIO,
        name: str,
        schema: DatanetSchema,
        limits: DocumentLimits | None = None,
        bundle_limits: BundleLimits | None = None,
        *,
        total_bytes: int | None = None,
        **split_options,
    ) -> None:
        if schema.task_type is not TaskType.DOCUMENTS:
            raise ValueError("iter_document_rows needs a documents schema")
        self.schema = schema
        self.limits = limits or DocumentLimits()
        self.bundle_limits = bundle_limits or BundleLimits()
        self.split_options = split_options
        self.notes: list[str] = []
        self.documents_read = 0
        self.documents_refused = 0
        self.accepted_count = 0
        self.rejected_count = 0
        self.bytes_read = 0
        self.total_bytes = total_bytes
        self._results = self._generate(source, name)

    @property
    def progress(self) -> float | None:
        return min(self.bytes_read / self.total_bytes, 1.0) if self.total_bytes else None

    def __iter__(self) -> DocumentRowStream:
        return self

    def __next__(self) -> RowResult:
        return next(self._results)

    # --- reading ----------------------------------------------------------------------------------

    def _read_upload(self, source: bytes | BinaryIO) -> bytes:
        cap = max(self.limits.max_file_bytes, self.bundle_limits.max_total_bytes)
        data = bytes(source) if isinstance(source, bytes | bytearray | memoryview) else source.read(cap + 1)
        if len(data) > cap:
            raise IngestError(
                "file_too_large",
                f"This upload is larger than the {describe_bytes(cap)} limit. Upload fewer documents at a time.",
            )
        if self.total_bytes is None:
            self.total_bytes = len(data)
        return data

    def _generate(self, source: bytes | BinaryIO, name: str) -> Iterator[RowResult]:
        data = self._read_upload(source)
        # A zip named as a document (a "report.docx" that is no Word document) is refused as that document,
        # not opened as a bundle: the name is what the contributor meant.
        entries = None if _named_document(name) else _bundle_entries(data, self.bundle_limits)
        if entries is None:
            if (refusal := document_name_refusal(name)) is not None:
                raise refusal
            outcome = next(extract_passages([(display_name(name), data)], self.limits, **self.split_options))
            self.bytes_read = len(data)
            if not outcome.ok:
                raise outcome.error
            yield from self._rows(outcome, 0)
            return
        yield from self._bundle_rows(data, entries)

    def _bundle_rows(self, data: bytes, entries: list[zipfile.ZipInfo]) -> Iterator[RowResult]:
        limits, bundle = self.limits, self.bundle_limits
        files = [entry for entry in entries if not entry.is_dir()]
        noise = [entry.filename for entry in files if _is_archiver_noise(entry.filename)]
        if noise:
            self.notes.append(f"Skipped {len(noise)} archiver bookkeeping entr{'y' if len(noise) == 1 else 'ies'} "
                              f"(e.g. {display_name(noise[0])}): they hold no document.")
        files = [entry for entry in files if not _is_archiver_noise(entry.filename)]
        if not files:
            raise IngestError("no_documents", f"This zip holds no documents. Put {ACCEPTED} in it.")
        row_number, decompressed = 0, 0
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for position, entry in enumerate(files):
                name = display_name(entry.filename)
                stop = None
                if position >= bundle.max_documents:
                    stop = f"a zip may hold at most {bundle.max_documents} documents"
                elif decompressed + min(entry.file_size, limits.max_file_bytes) > bundle.max_total_bytes:
                    stop = f"its documents together pass the {describe_bytes(bundle.max_total_bytes)} limit"
                if stop is not None:
                    # One row for the rest: the documents read so far stay.
                    rest = len(files) - position
                    row_number += 1
                    self.documents_refused += rest
                    yield self._refused(row_number, name, IngestError(
                        "too_many_documents",
                        f"This document and the {rest - 1} after it in the zip were not read: {stop}. "
                        "Upload them in another contribution.",
                    ))
                    return
                content = self._member(archive, entry, name)
                self.bytes_read = min(self.bytes_read + entry.compress_size, len(data))
                if isinstance(content, IngestError):
                    row_number += 1
                    self.documents_refused += 1
                    yield self._refused(row_number, name, content)
                    continue
                decompressed += len(content)
                outcome = next(extract_passages([(name, content)], limits, **self.split_options))
                del content
                if not outcome.ok:
                    row_number += 1
                    self.documents_refused += 1
                    yield self._refused(row_number, name, outcome.error)
                    continue
                for row in self._rows(outcome, row_number):
                    row_number = row.row_number
                    yield row
                    if row.rejection is not None and row.rejection.code is RejectionCode.TOO_MANY_ROWS:
                        return
        self.bytes_read = len(data)

    def _member(self, archive: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str) -> bytes | IngestError:
        """One member's bytes, read within the document size cap whatever its header claims."""
        if (refusal := document_name_refusal(entry.filename, in_bundle=True)) is not None:
            return refusal
        if entry.flag_bits & 0x1:
            return IngestError("encrypted_zip", f"“{name}” is password-protected inside the zip. Add it without a "
                                                "password and upload it again.")
        cap = self.limits.max_file_bytes
        too_large = IngestError("file_too_large", f"This document is larger than the {describe_bytes(cap)} limit. "
                                                  "Split it into smaller documents.")
        if entry.file_size > cap:
            return too_large
        try:
            with archive.open(entry) as member:
                content = member.read(cap + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
            # A bad CRC (a header that lies about the size), an unknown compression method, a damaged entry.
            return IngestError("corrupt_zip", f"“{name}” is damaged inside the zip and cannot be read. Create the "
                                              "zip again and upload it.")
        return too_large if len(content) > cap else content

    # --- rows -------------------------------------------------------------------------------------

    def _refused(self, row_number: int, name: str, error: IngestError) -> RowResult:
        self.rejected_count += 1
        return RowResult(
            row_number, None, rejection=Rejection(error.code, f"“{name}”: {error.message}"),  # type: ignore[arg-type]
            content={"document": name, "anchor": ""}, location=f"“{name}”",
        )

    def _rows(self, outcome: DocumentOutcome, row_number: int) -> Iterator[RowResult]:
        """The passages of one document as rows numbered on from ``row_number``."""
        self.documents_read += 1
        if outcome.document is not None:
            self.notes.extend(f"“{outcome.name}”: {note}" for note in outcome.document.notes)
        max_rows = self.schema.max_rows_per_contribution
        for passage in outcome.passages:
            row_number += 1
            location = f"passage {passage.index + 1} of “{outcome.name}”" + (
                f" ({passage.anchor})" if passage.anchor else "")
            values = {"text": passage.text, "document": outcome.name, "anchor": passage.anchor,
                      "page": str(passage.page) if passage.page is not None else None,
                      "headings": " › ".join(passage.headings) or None}
            if row_number > max_rows:
                self.rejected_count += 1
                yield RowResult(row_number, None, rejection=Rejection(
                    RejectionCode.TOO_MANY_ROWS,
                    f"A contribution may hold at most {max_rows:,} passages; {_sentence(location)} and the rest "
                    "were not read. Upload the remaining documents separately.",
                ), content={"document": outcome.name, "anchor": passage.anchor}, location=location)
                return
            try:
                fields = validate_values(values, self.schema)
            except RowInvalid as invalid:
                self.rejected_count += 1
                yield RowResult(row_number, None, rejection=Rejection(invalid.code, f"{_sentence(location)}: {invalid.detail}"),
                                content={"document": outcome.name, "anchor": passage.anchor,
                                         "text": passage.text[:200]}, location=location)
                continue
            self.accepted_count += 1
            yield RowResult(row_number, None, fields, content_hash(fields, self.schema), location=location)


def iter_document_rows(
    source: bytes | BinaryIO,
    name: str,
    schema: DatanetSchema,
    limits: DocumentLimits | None = None,
    bundle_limits: BundleLimits | None = None,
    *,
    total_bytes: int | None = None,
    **split_options,
) -> DocumentRowStream:
    """Read an uploaded document, or a zip of documents, as rows of a documents Datanet.

    ``split_options`` go to :func:`~.passages.split_passages` (``max_tokens``, ``overlap_tokens``,
    ``tokenizer``). File-level problems raise :class:`IngestError` during iteration (the upload is read
    on the first ``next``); see the module docstring for what one bad document costs."""
    return DocumentRowStream(source, name, schema, limits, bundle_limits, total_bytes=total_bytes, **split_options)
