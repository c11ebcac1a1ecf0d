"""Documents (.txt, .md, .html, .pdf, .docx, each optionally gzipped) become anchored passages; hostile and
broken documents each end in one clear IngestError with bounded memory, and never take a batch down."""

import gzip
import hashlib
import tracemalloc

import pytest
from document_builders import (
    MB,
    flate_bomb_pdf,
    image_only_pdf,
    lying_size_docx,
    simple_docx,
    text_pdf,
    with_extra_entries,
    word_document,
)

from datanets.ingest import IngestError
from datanets.ingest.documents import DocumentKind, DocumentLimits, extract_document, extract_passages
from datanets.ingest.normalise import normalise_text
from datanets.ingest.passages import WhitespaceTokenizer, WordPieceTokenizer, split_passages

WORDPIECE = WordPieceTokenizer()
SENTENCES = [
    f"Sentence {n} explains how the {word} pipeline handles step {n} of the ingestion process."
    for n, word in enumerate(["tokenizer", "encoder", "indexer", "ranker", "auditor"] * 12)
]
MARKDOWN = (
    "# Operations guide\n\n## Install\n\n### Linux\n\nRun the installer. It asks two questions! Then it is done.\n\n"
    "```\n# a comment in code, not a heading\n```\n\n"
    "Reference\n=========\n\n" + " ".join(SENTENCES) + "\n"
)


def token_count(text):
    return WORDPIECE.measure([text])[0].count


def error_of(data, name, limits=None):
    with pytest.raises(IngestError) as caught:
        extract_document(data, name, limits)
    return caught.value


def peak_memory(function):
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_markdown_headings_give_each_passage_its_heading_path_and_exact_offsets():
    document = extract_document(MARKDOWN.encode(), "guide.md")
    assert document.kind is DocumentKind.MARKDOWN
    passages = split_passages(document, max_tokens=64, overlap_tokens=16)

    first = passages[0]
    assert first.headings == ("Operations guide", "Install", "Linux")
    assert first.anchor == "Operations guide › Install › Linux"
    # The headings open the passage that follows them, and the fenced "#" line stays body text.
    assert first.text.startswith("Operations guide\n\nInstall\n\nLinux\n\nRun the installer.")
    assert "# a comment in code" in first.text
    reference = [p for p in passages if p.headings == ("Reference",)]
    assert len(reference) >= 4 and reference[0].text.startswith("Reference\n\nSentence 0")
    for passage in passages:
        assert passage.text == document.text[passage.start : passage.end]
        assert passage.document == "guide.md"
        assert passage.token_count == token_count(passage.text) <= 64
        expected = hashlib.sha256(normalise_text(passage.text, casefold=True).encode()).hexdigest()
        assert passage.content_hash == expected
    assert [p.index for p in passages] == list(range(len(passages)))


def test_long_sections_split_at_sentences_with_a_token_overlap_and_lose_no_text():
    document = extract_document(" ".join(SENTENCES).encode(), "notes.txt")
    passages = split_passages(document, max_tokens=96, overlap_tokens=24)
    assert len(passages) > 5
    covered = set()
    for before, after in zip(passages, passages[1:]):
        assert after.start < before.end  # consecutive passages overlap...
        shared = document.text[after.start : before.end]
        assert 0 < token_count(shared) <= 24  # ...by at most overlap_tokens tokens
        assert before.text.endswith(".") and after.text.startswith("Sentence")  # cut at sentence ends
    for passage in passages:
        assert passage.token_count == token_count(passage.text) <= 96
        covered.update(range(passage.start, passage.end))
    assert all(i in covered for i, c in enumerate(document.text) if not c.isspace())
    assert all(p.anchor == "" and p.page is None for p in passages)


def test_overlap_uses_trailing_words_when_the_last_sentence_is_longer_than_the_overlap():
    long_sentence = " ".join(f"word{i}" for i in range(60)) + "."
    document = extract_document((long_sentence + " " + long_sentence).encode(), "long.txt")
    passages = split_passages(document, max_tokens=40, overlap_tokens=6, tokenizer=WhitespaceTokenizer())
    for before, after in zip(passages, passages[1:]):
        shared = document.text[after.start : before.end]
        assert 1 <= len(shared.split()) <= 6 and after.text.startswith("word")
        assert before.token_count <= 40


def test_text_without_spaces_is_still_cut_within_the_budget():
    document = extract_document(("東京タワーは高い。" * 300 + "字" * 3000).encode(), "cjk.txt")
    passages = split_passages(document, max_tokens=64, overlap_tokens=8)
    assert len(passages) > 20
    assert all(p.token_count == token_count(p.text) <= 64 for p in passages)


def test_pdf_passages_are_anchored_to_pages_and_pages_without_text_are_noted():
    pages = [["Page one opens the report.", "It has two lines."], [], ["Page three closes it (with parentheses)."]]
    document = extract_document(text_pdf(pages), "report.pdf")
    assert document.kind is DocumentKind.PDF and document.page_count == 3
    assert document.notes == ("Pages without a text layer were skipped: 2.",)
    passages = split_passages(document)
    assert [(p.page, p.anchor) for p in passages] == [(1, "p. 1"), (3, "p. 3")]
    assert passages[0].text == "Page one opens the report.\nIt has two lines."
    assert passages[1].text == "Page three closes it (with parentheses)."


def test_docx_headings_paragraphs_and_tables_in_document_order():
    def build(document):
        document.add_heading("Quarterly review", level=0)
        document.add_paragraph("An introduction before any section.")
        document.add_heading("Revenue", level=1)
        document.add_paragraph("Revenue grew in every region.")
        table = document.add_table(rows=2, cols=2)
        for row, values in zip(table.rows, [("Region", "Growth"), ("North", "12%")]):
            for cell, value in zip(row.cells, values):
                cell.text = value
        document.add_heading("Europe", level=2)
        document.add_paragraph("Europe led the growth.")

    document = extract_document(word_document(build), "review.docx")
    assert document.kind is DocumentKind.DOCX
    passages = split_passages(document)
    assert [(p.headings, p.text) for p in passages] == [
        (("Quarterly review",), "Quarterly review\n\nAn introduction before any section."),
        (("Revenue",), "Revenue\n\nRevenue grew in every region.\n\nRegion | Growth\n\nNorth | 12%"),
        (("Revenue", "Europe"), "Europe\n\nEurope led the growth."),
    ]


def test_html_keeps_the_main_content_and_drops_scripts_and_page_furniture():
    page = """<!DOCTYPE html><html><head><title>Ignored: the page has an h1</title>
    <style>p { color: red }</style></head><body>
    <header><a href="/">Site logo</a></header><nav><a href="/x">Menu entry</a></nav>
    <main><article><h1>Café notes</h1><p>First   paragraph with <b>bold</b> text.<br>Second line.</p>
    <script>trackVisitor()</script><div hidden>hidden text</div>
    <h2>Prices</h2><table><tr><th>Item</th><th>Price</th></tr><tr><td>Crème</td><td>3 €</td></tr></table>
    <pre>  indented
    code</pre></article></main><footer>Copyright footer</footer></body></html>"""
    document = extract_document(page.encode("utf-8"), "notes.html")
    assert document.kind is DocumentKind.HTML
    assert document.text == (
        "Café notes\n\nFirst paragraph with bold text.\nSecond line.\n\nPrices\n\nItem | Price\n\n"
        "Crème | 3 €\n\nindented\n    code"  # blocks are stripped: a first-line indent goes
    )
    assert [s.headings for s in document.sections] == [("Café notes",), ("Café notes", "Prices")]


def test_html_without_headings_takes_its_title_as_the_heading():
    document = extract_document(b"<html><head><title>Memo</title></head><body><p>Short memo.</p></body></html>", "m.htm")
    assert [(p.anchor, p.text) for p in split_passages(document)] == [("Memo", "Memo\n\nShort memo.")]


@pytest.mark.parametrize(
    "name, data",
    [
        ("a.txt", b"Plain text document."),
        ("a.md", b"# Title\n\nMarkdown body."),
        ("a.html", b"<html><body><h1>Title</h1><p>Web body.</p></body></html>"),
        ("a.pdf", text_pdf([["PDF body."]])),
        ("a.docx", simple_docx("Word body.")),
    ],
)
def test_every_format_reads_the_same_when_gzipped(name, data):
    plain = extract_document(data, name)
    compressed = gzip.compress(data, mtime=0)  # one fixed byte string: gzip stamps the current second otherwise
    for gz_name in (name + ".gz", name):  # a gzip file is recognised with or without .gz
        packed = extract_document(compressed, gz_name)
        assert (packed.kind, packed.text, packed.sections) == (plain.kind, plain.text, plain.sections)
        assert packed.sha256 == hashlib.sha256(compressed).hexdigest() != plain.sha256


def test_paths_and_file_objects_are_read_like_bytes(tmp_path):
    path = tmp_path / "doc.md"
    path.write_bytes(MARKDOWN.encode())
    with path.open("rb") as handle:
        from_handle = extract_document(handle, "doc.md")
    assert extract_document(path, "doc.md").text == from_handle.text == extract_document(MARKDOWN.encode(), "doc.md").text


def test_encrypted_pdf_is_refused_but_an_edit_protected_one_is_read():
    assert error_of(text_pdf([["Secret plans."]], password="hunter2"), "locked.pdf").code == "encrypted_pdf"
    # Encrypted with an empty user password: anyone can open it, so its text is read.
    assert extract_document(text_pdf([["Open to read."]], password=""), "open.pdf").text == "Open to read."


def test_image_only_pdf_is_refused_as_having_no_text_layer():
    error = error_of(image_only_pdf(), "scan.pdf")
    assert error.code == "no_text_layer" and "OCR" in error.message


def test_pdf_decompression_bomb_stops_at_the_stream_limit_with_bounded_memory():
    bomb = flate_bomb_pdf(64)  # 64 MB of content from about 65 KB
    limits = DocumentLimits(max_pdf_stream_bytes=4 * MB)
    codes = []
    peak = peak_memory(lambda: codes.append(error_of(bomb, "bomb.pdf", limits).code))
    assert codes == ["pdf_limit"] and len(bomb) < MB
    assert peak < 16 * MB


def test_damaged_pdf_is_refused_as_corrupt():
    assert error_of(text_pdf([["Hello"]])[:200], "cut.pdf").code == "corrupt_pdf"


def test_docx_zip_bombs_are_refused_before_inflating():
    declared = with_extra_entries(simple_docx(), [("word/media/huge.bin", 80)])  # declares 80 MB
    assert error_of(declared, "declared.docx").code == "docx_too_large"
    many = with_extra_entries(simple_docx(), [(f"extra/part{i}.xml", b"<a/>") for i in range(1_100)])
    assert error_of(many, "many.docx").code == "docx_too_many_entries"
    # Headers that claim 1,000 bytes for an entry inflating to 100 MB: read in bounded chunks, it fails
    # its checksum instead of being inflated in one call.
    lying = lying_size_docx(100)
    codes = []
    peak = peak_memory(lambda: codes.append(error_of(lying, "lying.docx").code))
    assert codes == ["corrupt_docx"] and peak < 8 * MB


def test_huge_html_and_huge_text_are_refused_by_size():
    limits = DocumentLimits(max_html_bytes=MB, max_text_bytes=MB)
    page = b"<html><body>" + b"<p>filler text</p>" * 70_000 + b"</body></html>"
    assert error_of(page, "huge.html", limits).code == "html_too_large"
    assert error_of(b"words " * 200_000, "huge.txt", limits).code == "text_too_large"
    assert error_of(b"x" * (2 * MB), "big.txt", DocumentLimits(max_file_bytes=MB)).code == "file_too_large"


def test_gzip_bomb_is_refused_early_with_bounded_memory():
    bomb = gzip.compress(b"a" * (64 * MB))  # ~64 KB
    codes = []
    peak = peak_memory(lambda: codes.append(error_of(bomb, "bomb.txt.gz").code))
    assert codes == ["gzip_ratio"] and peak < 16 * MB
    assert error_of(gzip.compress(gzip.compress(b"text")), "twice.txt.gz").code == "nested_compression"
    assert error_of(gzip.compress(b"some text")[:-6], "cut.txt.gz").code == "truncated_gzip"


@pytest.mark.parametrize(
    "name, data, content",
    [
        ("report.docx", text_pdf([["A PDF."]]), "a PDF file"),
        ("report.pdf", simple_docx(), "a Word document"),
        ("page.txt", b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "a web page"),
        ("notes.html", b"Just some plain text, no markup.", "plain text"),
        ("notes.pdf", b"Just some plain text.", "plain text"),
    ],
)
def test_wrong_extension_is_refused_naming_the_real_content(name, data, content):
    error = error_of(data, name)
    assert error.code == "wrong_extension" and content in error.message and repr(name) in error.message


def test_unsupported_and_undecodable_content_is_refused():
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    assert error_of(png, "photo.png").code == "unsupported_format"
    assert error_of(bytes(range(256)) * 40, "blob").code == "unsupported_format"
    assert error_of("Grüße aus Köln, " .encode("cp1252") * 50, "latin1.txt").code == "not_utf8"
    assert error_of("text".encode("utf-16"), "wide.txt").code == "not_utf8"


@pytest.mark.parametrize(
    "name, data",
    [
        ("empty.txt", b""),
        ("blank.md", b"  \n\n \t\n"),
        ("blank.docx", simple_docx("")),
        ("script.html", b"<html><body><script>only()</script></body></html>"),
        ("blank.txt.gz", gzip.compress(b"")),
    ],
)
def test_empty_documents_are_refused(name, data):
    assert error_of(data, name).code == "empty_document"


def test_a_batch_reports_each_bad_document_and_reads_the_others():
    batch = [
        ("good.md", MARKDOWN.encode()),
        ("locked.pdf", text_pdf([["Secret"]], password="pw")),
        ("scan.pdf", image_only_pdf()),
        ("good.pdf", text_pdf([["Readable page."]])),
        ("bomb.txt.gz", gzip.compress(b"a" * (16 * MB))),
        ("wrong.docx", text_pdf([["PDF"]])),
        ("empty.txt", b""),
        ("good.docx", simple_docx("Word text.")),
    ]
    outcomes = list(extract_passages(batch, max_tokens=64, overlap_tokens=8))
    assert [o.name for o in outcomes] == [name for name, _ in batch]
    assert [o.error.code if o.error else "ok" for o in outcomes] == [
        "ok", "encrypted_pdf", "no_text_layer", "ok", "gzip_ratio", "wrong_extension", "empty_document", "ok"
    ]
    good = [o for o in outcomes if o.ok]
    assert all(o.passages and o.document for o in good)
    assert good[1].passages[0].text == "Readable page." and good[2].passages[0].text == "Word text."


def test_split_options_and_limits_are_validated():
    document = extract_document(b"Some text.", "a.txt")
    with pytest.raises(ValueError):
        split_passages(document, max_tokens=4)
    with pytest.raises(ValueError):
        split_passages(document, max_tokens=64, overlap_tokens=32)
    with pytest.raises(ValueError):
        DocumentLimits(max_html_bytes=0)
