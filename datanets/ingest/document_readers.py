"""One reader per document format, each turning bytes into :class:`Block` objects.

Parsing is done by maintained libraries (pypdf, python-docx, lxml's HTML parser); what is written here
only walks what they return and decides which parts are headings. Every reader applies its format's
limits before handing data to the library, and turns the library's many exception types into one
:class:`IngestError` for the contributor.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import IngestError
from .limits import describe_bytes

if TYPE_CHECKING:
    from .documents import DocumentLimits


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph-like unit of a document: body text, or a heading of ``heading_level`` 1-6."""

    text: str
    heading_level: int = 0
    page: int | None = None


# --- Markdown -------------------------------------------------------------------------------------------
# Only headings matter here (the body is kept as written), so a linear line scan replaces a full parser:
# markdown-it-py took over a minute and 600 MB on 1.5 MB of one-line paragraphs. The scan follows
# CommonMark for ATX headings ("## Title"), setext headings (a one-line paragraph underlined with === or
# ---) and fenced code blocks (``` or ~~~, whose "#" lines are not headings). Indented code is not
# tracked: a "#" line indented by four spaces or more is not a heading anyway.
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def read_markdown(text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    body_start = 0
    fence: str | None = None

    def body(stop: int) -> None:
        if stop > body_start:
            blocks.append(Block("\n".join(lines[body_start:stop])))

    index = 0
    while index < len(lines):
        line = lines[index]
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
        elif opening:
            fence = opening.group(1)
        elif atx := _ATX.match(line):
            body(index)
            blocks.append(Block(atx.group(2) or "", len(atx.group(1))))
            body_start = index + 1
        elif (
            line.strip()
            and index + 1 < len(lines)
            and (index == 0 or not lines[index - 1].strip())
            and (underline := _SETEXT.match(lines[index + 1]))
        ):
            body(index)
            blocks.append(Block(line.strip(), 1 if underline.group(1)[0] == "=" else 2))
            index += 1
            body_start = index + 1
        index += 1
    body(len(lines))
    return blocks


# --- HTML -----------------------------------------------------------------------------------------------
# Never text: scripts, styles, embedded objects, form controls.
_SKIP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "canvas", "form",
     "button", "select", "option", "input", "textarea", "head"}
)
# Page furniture around the content: dropped wherever it is, except a <header> inside the content root
# (an article's header holds its title).
_FURNITURE_TAGS = frozenset({"nav", "aside", "footer"})
_FURNITURE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "header", "li", "ul", "ol", "dl", "dt", "dd", "blockquote",
     "pre", "table", "tr", "thead", "tbody", "tfoot", "caption", "figure", "figcaption", "address",
     "details", "summary", "hr", "body", "html"}
)
_HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}
_CELL_TAGS = frozenset({"td", "th"})


def _skipped(element, root_is_body: bool) -> bool:
    tag = element.tag
    if tag in _SKIP_TAGS or tag in _FURNITURE_TAGS or (tag == "header" and root_is_body):
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    return (element.get("role") or "").lower() in _FURNITURE_ROLES


class _HtmlBlocks:
    """Collects text into blocks while walking the tree: block tags end a block, headings become one."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.pieces: list[str] = []
        self.cells_in_row = 0

    def add(self, text: str | None) -> None:
        if text:
            self.pieces.append(text)

    def flush(self, heading_level: int = 0, preformatted: bool = False) -> None:
        text = "".join(self.pieces)
        self.pieces.clear()
        self.cells_in_row = 0
        if not preformatted:
            text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
        if text.strip():
            self.blocks.append(Block(text.strip("\n") if preformatted else text.strip(), heading_level))


def read_html(data: bytes, max_bytes: int) -> list[Block]:
    from lxml import etree
    from lxml import html as lxml_html

    if len(data) > max_bytes:
        raise IngestError(
            "html_too_large",
            f"This web page is larger than the {describe_bytes(max_bytes)} limit. Save only the article "
            "(or print it to PDF) and upload that.",
        )
    try:
        data.decode("utf-8")
        encoding = "utf-8"  # valid UTF-8 is UTF-8, whatever a stale <meta charset> claims
    except UnicodeDecodeError:
        encoding = None  # let libxml2 follow the page's declaration
    parser = lxml_html.HTMLParser(
        encoding=encoding, remove_comments=True, remove_pis=True, no_network=True, huge_tree=False
    )
    try:
        document = lxml_html.document_fromstring(data, parser=parser)
    except etree.ParserError as error:
        if "empty" in str(error).lower():
            raise IngestError("empty_document", "This web page contains no text.") from None
        raise IngestError("corrupt_html", "This web page cannot be parsed. Save it again and upload it.") from None
    except (etree.LxmlError, ValueError):
        raise IngestError("corrupt_html", "This web page cannot be parsed. Save it again and upload it.") from None
    root = next(iter(document.iter("main")), None)
    if root is None:
        articles = list(document.iter("article"))
        body = document.find("body")
        root = articles[0] if len(articles) == 1 else (body if body is not None else document)
    root_is_body = root.tag in ("body", "html")
    collector = _HtmlBlocks()
    if not any(True for _ in root.iter("h1")) and (title := document.findtext(".//title")):
        collector.add(title)
        collector.flush(heading_level=1)
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if element is not root and _skipped(element, root_is_body):
                walker.skip_subtree()
                element.text = None  # its end event below still adds its tail, which is outside it
                continue
            if tag in _HEADING_TAGS or tag in _BLOCK_TAGS:
                collector.flush()
            elif tag == "br":
                collector.add("\n")
            elif tag in _CELL_TAGS:
                if collector.cells_in_row:
                    collector.add(" | ")
                collector.cells_in_row += 1
            collector.add(element.text)
        else:
            if tag in _HEADING_TAGS:
                collector.flush(heading_level=_HEADING_TAGS[tag])
            elif tag in _BLOCK_TAGS:
                collector.flush(preformatted=tag == "pre")
            if element is not root:
                collector.add(element.tail)
    collector.flush()
    return collector.blocks


# --- Word (.docx) ---------------------------------------------------------------------------------------
def _zip_damaged() -> IngestError:
    return IngestError("corrupt_docx", "This file looks like a Word document but its zip structure is damaged.")


def zip_member_names(data: bytes, limits: DocumentLimits) -> set[str]:
    """The names in a zip-based file, after checking its directory against the limits.

    The entry count and directory size are read from the end-of-central-directory record *before*
    zipfile builds an object per entry (a 50 MB file could hold a million tiny entries); the declared
    uncompressed sizes are then summed. Declared sizes can lie: :func:`_repacked` deals with that.
    """
    stream = io.BytesIO(data)
    try:
        # A private helper, but stable since Python 2: parsing that record by hand would be worse.
        end_record = zipfile._EndRecData(stream)  # type: ignore[attr-defined]
    except OSError:
        end_record = None
    if not end_record:
        raise _zip_damaged()
    entries = end_record[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
    directory_bytes = end_record[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    # A directory entry is 46 bytes plus its name; 1 KB each is already generous.
    if entries > limits.max_docx_entries or directory_bytes > 1024 * limits.max_docx_entries:
        raise _too_many_entries(limits)
    try:
        with zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise _zip_damaged() from None
    if len(members) > limits.max_docx_entries:
        raise _too_many_entries(limits)
    if sum(member.file_size for member in members) > limits.max_docx_uncompressed_bytes:
        raise IngestError(
            "docx_too_large",
            f"This Word document's contents pass the {describe_bytes(limits.max_docx_uncompressed_bytes)} "
            "uncompressed limit (it may be a zip bomb). Remove large images or split the document.",
        )
    xml_bytes = sum(m.file_size for m in members if m.filename.endswith((".xml", ".rels")))
    if xml_bytes > limits.max_docx_xml_bytes:
        raise IngestError(
            "docx_too_large",
            f"This Word document's text parts pass the {describe_bytes(limits.max_docx_xml_bytes)} limit. "
            "Split it into smaller documents.",
        )
    return {member.filename for member in members}


def _too_many_entries(limits: DocumentLimits) -> IngestError:
    return IngestError(
        "docx_too_many_entries",
        f"This zip-based file holds more than {limits.max_docx_entries:,} parts, which real documents never do. "
        "Re-save it from the program that made it.",
    )


_INFLATE_CHUNK = 64 * 1024


def _repacked(data: bytes) -> bytes:
    """The same zip rewritten uncompressed, each entry inflated at most 64 KB per step.

    zipfile's ``read()`` of a whole entry inflates *all* its compressed bytes in one call and only then
    cuts the result to the declared size, so an entry that declares 1 KB but inflates to 1 GB would
    allocate the gigabyte inside python-docx. Reading in chunks stops at the declared size (which
    :func:`zip_member_names` has capped) and fails the CRC check if the data disagrees; the rewritten
    zip handed to python-docx then holds exactly what was declared. Only stored and deflated entries are
    accepted (Word writes nothing else; zipfile inflates bzip2 and LZMA without any output bound).
    """
    out = io.BytesIO()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                if info.is_dir():
                    continue
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _zip_damaged()
                with source.open(info) as member, target.open(info.filename, "w", force_zip64=True) as copy:
                    while chunk := member.read(_INFLATE_CHUNK):
                        copy.write(chunk)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error):
        raise IngestError(
            "corrupt_docx",
            "This Word document's contents are damaged (an entry does not match its checksum or size). "
            "Re-save it from Word and upload it.",
        ) from None
    return out.getvalue()


def _heading_level(style_name: str) -> int:
    name = style_name.strip().lower()
    if name == "title":
        return 1
    if name.startswith("heading ") and name[8:].isdigit():
        return min(max(int(name[8:]), 1), 6)
    return 0


def _table_rows(table) -> Iterator[str]:
    for row in table.rows:
        seen: list = []
        texts: list[str] = []
        for cell in row.cells:
            if any(cell._tc is other for other in seen):  # merged cells repeat the same cell
                continue
            seen.append(cell._tc)
            texts.append(" ".join(cell.text.split()))
        if any(texts):
            yield " | ".join(texts)


def read_docx(data: bytes, limits: DocumentLimits) -> list[Block]:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.table import Table

    zip_member_names(data, limits)  # limits first (sniffing checked them too; this keeps the reader safe alone)
    repacked = _repacked(data)
    try:
        document = docx.Document(io.BytesIO(repacked))
        # Heading level by style id, computed once: Paragraph.style scans every style of the document
        # for each paragraph without an explicit style (1.6 s for 400 paragraphs).
        levels = {style.style_id: _heading_level(style.name or "") for style in document.styles
                  if style.type == WD_STYLE_TYPE.PARAGRAPH}
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                blocks.extend(Block(row) for row in _table_rows(item))
            else:
                blocks.append(Block(item.text, levels.get(item._p.style, 0)))  # _p.style: the pStyle id
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - python-docx/lxml/zipfile raise many types for one cause: damage
        raise IngestError(
            "corrupt_docx", "This Word document is damaged and cannot be read. Re-save it from Word and upload it."
        ) from None
    return blocks


# --- PDF ------------------------------------------------------------------------------------------------
def read_pdf(data: bytes, limits: DocumentLimits) -> tuple[list[Block], int, tuple[str, ...]]:
    """One body block per page that has text; pages without a text layer are named in a note."""
    import pypdf
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    caps = {
        "zlib_maximum_output_length": limits.max_pdf_stream_bytes,
        "lzw_maximum_output_length": limits.max_pdf_stream_bytes,
        "run_length_maximum_output_length": limits.max_pdf_stream_bytes,
        "brotli_maximum_output_length": limits.max_pdf_stream_bytes,
        "array_based_stream_maximum_output_length": limits.max_pdf_stream_bytes,
        "stream_decoding_work_maximum_length": 4 * limits.max_pdf_stream_bytes,
    }
    encrypted = IngestError(
        "encrypted_pdf",
        "This PDF is protected by a password. Remove the protection (or print it to a new PDF) and upload it.",
    )
    blocks: list[Block] = []
    empty_pages: list[int] = []
    characters = 0
    with pypdf.apply_configuration(**caps):
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            # Files "encrypted" only against editing open with the empty password; anything else is locked.
            if reader.is_encrypted and not reader.decrypt(""):
                raise encrypted
            page_count = len(reader.pages)
            if page_count > limits.max_pdf_pages:
                raise IngestError(
                    "too_many_pages",
                    f"This PDF has {page_count:,} pages; the limit is {limits.max_pdf_pages:,}. Split it.",
                )
            for number, page in enumerate(reader.pages, start=1):
                # Decode the content streams first: extract_text swallows pypdf's LimitReachedError and
                # returns "", which would report a decompression bomb as a page without text.
                page.get_contents()
                text = (page.extract_text() or "").replace("\x00", "")
                if not text.strip():
                    empty_pages.append(number)
                    continue
                characters += len(text)
                if characters > limits.max_text_chars:
                    raise IngestError(
                        "document_too_long",
                        f"This document holds more than {limits.max_text_chars:,} characters of text. Split "
                        "it into smaller documents.",
                    )
                blocks.append(Block(text, page=number))
        except IngestError:
            raise
        except MemoryError:
            raise
        except FileNotDecryptedError:
            raise encrypted from None
        except LimitReachedError:
            raise IngestError(
                "pdf_limit",
                f"This PDF holds data that decompresses past the {describe_bytes(limits.max_pdf_stream_bytes)} "
                "limit (it may be a decompression bomb). Re-export it, or print it to a new PDF.",
            ) from None
        except Exception as error:  # noqa: BLE001 - pypdf raises many exception types for one cause: damage
            if "crypt" in type(error).__name__.lower() or "decrypt" in str(error).lower():
                raise encrypted from None  # e.g. AES without a crypto library: still a locked file
            raise IngestError(
                "corrupt_pdf", "This PDF is damaged and cannot be read. Re-export it from the program that made it."
            ) from None
    if page_count == 0:
        raise IngestError("empty_document", "This PDF has no pages.")
    if not blocks:
        raise IngestError(
            "no_text_layer",
            "This PDF has no text layer (its pages are probably scanned images). Run text recognition (OCR) "
            "on it, for example with 'Save as searchable PDF', and upload the result.",
        )
    notes = (f"Pages without a text layer were skipped: {_page_list(empty_pages)}.",) if empty_pages else ()
    return blocks, page_count, notes


def _page_list(pages: list[int]) -> str:
    shown = ", ".join(str(page) for page in pages[:20])
    return shown + (f" and {len(pages) - 20} more" if len(pages) > 20 else "")
