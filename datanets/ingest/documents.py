"""Document ingestion: text out of ``.txt``, ``.md``, ``.html``, ``.pdf`` and ``.docx`` files.

:func:`extract_document` turns one uploaded document (optionally gzip-compressed) into a
:class:`Document`: its extracted text plus the sections that give each part an anchor (a page number for
PDF files, a heading path for Markdown, HTML and Word documents). :func:`split_passages` (in
:mod:`.passages`) cuts a document into passages; :func:`extract_passages` does both for a batch, one
outcome per document, so one bad document never costs the others.

The real type comes from the bytes, not the name. A known extension that contradicts the content (a PDF
named ``.docx``, a web page named ``.txt``) is refused with code ``wrong_extension``: unlike a table
upload, where the data is the same whatever the name, a document's name is what people see and cite,
and a disguised file is how hostile content usually arrives. ``.txt`` and ``.md`` are interchangeable
(both are text; the name decides whether Markdown headings are read). Files without a known extension
are read as what their content is.

Every step is bounded: the raw file, the gzip output, each format's own sizes (HTML bytes, Word zip
entries and their uncompressed size, PDF pages and stream sizes) and the extracted text are capped
before or while they are read, and each violation is one :class:`IngestError` with a stable code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from . import document_readers as readers
from .document_readers import Block
from .errors import IngestError
from .limits import MB, IngestLimits, describe_bytes
from .normalise import clean_text
from .sniff import (
    _ZIP_MAGIC,
    GZIP_MAGIC,
    MAX_UNDECODABLE_SHARE,
    UTF8_BOM,
    _content_kind,
    _looks_binary,
    _looks_utf16,
)
from .sniff import DOCX as DOCX_KIND
from .sniff import HTML as HTML_KIND
from .sniff import XML as XML_KIND
from .streams import iter_gunzipped

SUPPORTED = (
    "Lineage reads text (.txt), Markdown (.md), web pages (.html), PDF files with a text layer (.pdf) and "
    "Word documents (.docx), each optionally gzip-compressed (.gz)."
)


class DocumentKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"


_SUFFIXES = {
    ".txt": DocumentKind.TEXT,
    ".text": DocumentKind.TEXT,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".html": DocumentKind.HTML,
    ".htm": DocumentKind.HTML,
    ".xhtml": DocumentKind.HTML,
    ".pdf": DocumentKind.PDF,
    ".docx": DocumentKind.DOCX,
}
# How a kind is named in messages ("its content is a PDF file").
_DESCRIBED = {
    DocumentKind.TEXT: ("plain text", ".txt"),
    DocumentKind.MARKDOWN: ("plain text", ".md"),
    DocumentKind.HTML: ("a web page (HTML)", ".html"),
    DocumentKind.PDF: ("a PDF file", ".pdf"),
    DocumentKind.DOCX: ("a Word document (.docx)", ".docx"),
}


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """Bounds for one document; the defaults suit a web upload form.

    Every cap is checked before the data it guards is parsed (sizes, zip entry counts) or while it is
    produced (gzip output, PDF streams, extracted text), so memory stays within a small multiple of the
    largest cap whatever the file claims.
    """

    max_file_bytes: int = 50 * MB  # the upload as received, compressed or not
    max_decompressed_bytes: int = 64 * MB  # gzip output
    max_gzip_ratio: float = 100.0
    max_text_bytes: int = 16 * MB  # .txt / .md after decompression
    max_html_bytes: int = 8 * MB
    max_pdf_pages: int = 2_000
    # Largest decompressed PDF stream (a page's content, an embedded font or image): pypdf's own
    # default is 75 MB; text-bearing streams are far smaller, and this bounds a PDF decompression bomb.
    max_pdf_stream_bytes: int = 32 * MB
    max_docx_entries: int = 1_000
    max_docx_uncompressed_bytes: int = 64 * MB  # all entries, images included
    max_docx_xml_bytes: int = 16 * MB  # the XML parts python-docx parses into trees
    max_text_chars: int = 8_000_000  # extracted text, any format

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"DocumentLimits.{name} must be positive")
        if self.max_gzip_ratio <= 1:
            raise ValueError("DocumentLimits.max_gzip_ratio must be greater than 1")


@dataclass(frozen=True, slots=True)
class Section:
    """A span of :attr:`Document.text` that shares one anchor.

    ``start:heading_end`` is the heading text that opens the section (empty when there is none; several
    headings in a row with nothing between them all belong to the section that follows them),
    ``heading_end:end`` its body. ``headings`` is the heading path, outermost first; ``page`` the
    1-based page of a PDF section (PDF sections never cross a page).
    """

    start: int
    heading_end: int
    end: int
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class Document:
    """The text extracted from one file, with anchored sections.

    ``text`` is the blocks of the document (paragraphs, headings, table rows, PDF pages), each cleaned
    (NFC, ``\\n`` line endings, stripped) and joined by a blank line; every offset elsewhere indexes it.
    ``sha256`` identifies the file as uploaded (before gzip decompression).
    """

    name: str
    kind: DocumentKind
    text: str
    sections: tuple[Section, ...]
    sha256: str
    page_count: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentOutcome:
    """One document of a batch: its passages, or the error that refused it (never both)."""

    name: str
    document: Document | None = None
    passages: tuple = field(default=(), repr=False)  # tuple[Passage, ...]
    error: IngestError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _named_kind(name: str) -> tuple[DocumentKind | None, bool]:
    suffixes = [s.lower() for s in PurePosixPath(name.replace("\\", "/")).suffixes]
    named_gzip = bool(suffixes) and suffixes[-1] == ".gz"
    if named_gzip:
        suffixes = suffixes[:-1]
    return (_SUFFIXES.get(suffixes[-1]) if suffixes else None), named_gzip


def _read_bounded(source: bytes | BinaryIO | os.PathLike[str] | str, limits: DocumentLimits) -> bytes:
    """The whole file (every format here needs random access), refused once it passes the size cap."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    else:
        data = source.read(limits.max_file_bytes + 1)
        if not isinstance(data, bytes | bytearray):
            raise TypeError("extract_document needs bytes, a path or a file opened in binary mode")
        data = bytes(data)
    if len(data) > limits.max_file_bytes:
        raise IngestError(
            "file_too_large",
            f"This document is larger than the {describe_bytes(limits.max_file_bytes)} limit. "
            "Split it into smaller documents.",
        )
    return data


def _gunzip(data: bytes, limits: DocumentLimits) -> bytes:
    guard = IngestLimits(
        max_upload_bytes=limits.max_file_bytes,
        max_decompressed_bytes=limits.max_decompressed_bytes,
        max_gzip_ratio=limits.max_gzip_ratio,
    )
    out = bytearray()
    for piece in iter_gunzipped([data], guard):
        out += piece
    if out.startswith(GZIP_MAGIC):
        raise IngestError("nested_compression", "This file is compressed twice. Compress it only once with gzip.")
    return bytes(out)


def _looks_like_html(data: bytes, named: DocumentKind | None) -> bool:
    text = data[:1024].removeprefix(UTF8_BOM).lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return True
    if text.startswith(b"<?xml") and b"<html" in text:  # XHTML
        return True
    # A fragment ("<h1>Title</h1><p>...") is a web page only when the name says so.
    return named is DocumentKind.HTML and text.startswith(b"<")


def sniff_document(name: str, data: bytes, limits: DocumentLimits | None = None) -> DocumentKind:
    """What decompressed ``data`` really is; refuses empty, unsupported and misnamed content."""
    if not data.strip():
        raise IngestError("empty_document", "This document is empty.")
    limits = limits or DocumentLimits()
    named, _ = _named_kind(name)
    head = data[: 64 * 1024]
    if b"%PDF-" in head[:1024]:
        found = DocumentKind.PDF
    elif head.startswith(_ZIP_MAGIC):
        # Office documents are zip archives; the member list (read within the zip limits) says which.
        if "word/document.xml" in readers.zip_member_names(data, limits):
            found = DocumentKind.DOCX
        elif (kind := _content_kind(head, name)) is DOCX_KIND:
            raise IngestError(
                "corrupt_docx", "This Word document has no main part (word/document.xml): it is damaged. "
                "Re-save it from Word and upload it again.",
            )
        else:
            raise IngestError("unsupported_format", f"{kind.name} are not supported as documents. {SUPPORTED}")
    elif (kind := _content_kind(head, name)) is not None and kind not in (HTML_KIND, XML_KIND):
        raise IngestError("unsupported_format", f"{kind.name} are not supported as documents. {SUPPORTED}")
    elif _looks_utf16(head[:4096]):
        raise IngestError("not_utf8", "This document is UTF-16 text. Save it as UTF-8 and upload it again.")
    elif _looks_binary(head[:4096]):
        raise IngestError("unsupported_format", f"This file is binary data, not a document. {SUPPORTED}")
    elif _looks_like_html(head, named):
        found = DocumentKind.HTML
    elif head.removeprefix(UTF8_BOM).lstrip()[:5].lower() == b"<?xml":
        raise IngestError("unsupported_format", f"XML files are not supported as documents. {SUPPORTED}")
    else:
        found = DocumentKind.MARKDOWN if named is DocumentKind.MARKDOWN else DocumentKind.TEXT
    text_family = {DocumentKind.TEXT, DocumentKind.MARKDOWN}
    if named is not None and named is not found and not {named, found} <= text_family:
        what, suffix = _DESCRIBED[found]
        raise IngestError(
            "wrong_extension",
            f"This file is named {name!r} but its content is {what}. Rename it to end in {suffix} "
            "(if that is what you meant to upload) and upload it again.",
        )
    return found


def _decode_text(data: bytes) -> tuple[str, tuple[str, ...]]:
    text = data.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    if bad > MAX_UNDECODABLE_SHARE * max(len(text), 1):
        raise IngestError(
            "not_utf8",
            "This document is not UTF-8 text (it may be Latin-1/Windows-1252). Save it with UTF-8 encoding "
            "and upload it again.",
        )
    return text, ((f"{bad} undecodable byte(s) were replaced with U+FFFD.",) if bad else ())


@dataclass(slots=True)
class _OpenSection:
    start: int
    heading_end: int
    end: int
    page: int | None
    headings: tuple[str, ...]
    has_body: bool

    def closed(self) -> Section:
        return Section(self.start, self.heading_end, self.end, self.headings, self.page)


def _assemble(blocks: Iterable[Block], max_chars: int) -> tuple[str, tuple[Section, ...]]:
    """Join cleaned blocks with blank lines and group them into sections at headings and page breaks."""
    parts: list[str] = []
    sections: list[Section] = []
    path: list[tuple[int, str]] = []  # (level, heading) of the headings above the current block
    current: _OpenSection | None = None
    position = 0
    for block in blocks:
        text = clean_text(block.text)
        if not text:
            continue
        start = position + (2 if parts else 0)
        end = start + len(text)
        if end > max_chars:
            raise IngestError(
                "document_too_long",
                f"This document holds more than {max_chars:,} characters of text. Split it into smaller "
                "documents.",
            )
        parts.append(text)
        position = end
        if block.heading_level:
            while path and path[-1][0] >= block.heading_level:
                path.pop()
            path.append((block.heading_level, text))
            headings = tuple(heading for _, heading in path)
            if current is not None and not current.has_body and current.page == block.page:
                # Headings with nothing between them open one section, anchored at the innermost.
                current.heading_end = current.end = end
                current.headings = headings
                continue
            if current is not None:
                sections.append(current.closed())
            current = _OpenSection(start, end, end, block.page, headings, False)
        else:
            if current is None or current.page != block.page:
                if current is not None:
                    sections.append(current.closed())
                current = _OpenSection(start, start, end, block.page, tuple(h for _, h in path), True)
            current.end = end
            current.has_body = True
    if current is not None:
        sections.append(current.closed())
    return "\n\n".join(parts), tuple(sections)


def extract_document(
    source: bytes | BinaryIO | os.PathLike[str] | str, name: str, limits: DocumentLimits | None = None
) -> Document:
    """Read one document and return its text and sections.

    ``source`` is the file's bytes, a path, or a binary file object; ``name`` its name as uploaded (used
    to check the extension and in messages). Raises :class:`IngestError` with one of the codes
    ``file_too_large``, ``bad_gzip``, ``truncated_gzip``, ``gzip_ratio``, ``decompressed_too_large``,
    ``nested_compression``, ``empty_document``, ``unsupported_format``, ``wrong_extension``,
    ``not_utf8``, ``text_too_large``, ``html_too_large``, ``corrupt_html``, ``encrypted_pdf``,
    ``no_text_layer``, ``too_many_pages``, ``pdf_limit``, ``corrupt_pdf``, ``docx_too_large``,
    ``docx_too_many_entries``, ``corrupt_docx`` or ``document_too_long``.
    """
    limits = limits or DocumentLimits()
    raw = _read_bounded(source, limits)
    if not raw:
        raise IngestError("empty_document", "This document is empty.")
    sha256 = hashlib.sha256(raw).hexdigest()
    data = _gunzip(raw, limits) if raw.startswith(GZIP_MAGIC) else raw
    kind = sniff_document(name, data, limits)
    notes: tuple[str, ...] = ()
    page_count = None
    if kind in (DocumentKind.TEXT, DocumentKind.MARKDOWN):
        if len(data) > limits.max_text_bytes:
            raise IngestError(
                "text_too_large",
                f"This text document is larger than the {describe_bytes(limits.max_text_bytes)} limit. "
                "Split it into smaller documents.",
            )
        text, notes = _decode_text(data)
        blocks = readers.read_markdown(text) if kind is DocumentKind.MARKDOWN else [Block(text)]
    elif kind is DocumentKind.HTML:
        blocks = readers.read_html(data, limits.max_html_bytes)
    elif kind is DocumentKind.DOCX:
        blocks = readers.read_docx(data, limits)
    else:
        blocks, page_count, notes = readers.read_pdf(data, limits)
    text, sections = _assemble(blocks, limits.max_text_chars)
    if not text:
        raise IngestError("empty_document", "This document contains no text.")
    return Document(name, kind, text, sections, sha256, page_count, notes)


def extract_passages(
    documents: Iterable[tuple[str, bytes | BinaryIO | os.PathLike[str] | str]],
    limits: DocumentLimits | None = None,
    **split_options,
) -> Iterator[DocumentOutcome]:
    """Extract and split each ``(name, source)`` in turn, one :class:`DocumentOutcome` per document.

    A document that fails gets its :class:`IngestError` in the outcome and the batch goes on. An error
    that is not an IngestError (a parser bug on some input no test foresaw) is reported the same way,
    with code ``unreadable_document``, so that it cannot take the rest of the batch down with it.
    ``split_options`` go to :func:`~datanets.ingest.passages.split_passages`.
    """
    from .passages import split_passages

    for name, source in documents:
        try:
            document = extract_document(source, name, limits)
            passages = tuple(split_passages(document, **split_options))
        except IngestError as error:
            yield DocumentOutcome(name, error=error)
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - one document's failure must not end the batch
            yield DocumentOutcome(
                name,
                error=IngestError(
                    "unreadable_document",
                    f"This document could not be read ({type(error).__name__}). Re-save it from the program "
                    "that made it and upload it again.",
                ),
            )
        else:
            yield DocumentOutcome(name, document, passages)
