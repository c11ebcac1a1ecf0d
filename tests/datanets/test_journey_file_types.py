"""Issue #22, item 12: a file of the wrong type got a parser's complaint ("header lacks columns:
%PDF-1.4", "not UTF-8"). Now the content (and, for binary content that says nothing, the name) is
recognised before any parsing and the contributor reads "PDF files are not supported: ..." with what to
do instead; the contribution page's progress steps end in a Failed step.

Each kind is tested with real bytes: a minimal PDF, zip archives (plain, an .xlsx and a .docx as Office
writes them), PNG and JPEG headers, gzip of a PDF and of a workbook, random binary."""

import gzip
import html
import io
import os
import random
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datanets import services
from datanets.ingest import DatanetSchema, IngestError, iter_rows
from datanets.ingest.sniff import FileFormat, sniff_format
from datanets.models import ContributionState, Record

PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
       b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00C\x00"
RANDOM = random.Random(22).randbytes(8192)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


CONTENT_TYPES = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
XLSX = zipped({"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": b"<Relationships/>",
               "xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": b"<worksheet/>"})
DOCX = zipped({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": b"<document/>"})
ZIP = zipped({"rows.csv": b"text,label\nhello,positive\n"})

# (file name, bytes, what the message must start with)
UNSUPPORTED = [
    ("reviews.pdf", PDF, "PDF files are not supported: "),
    ("reviews.csv", PDF, "PDF files are not supported: "),  # the name does not matter, the content does
    ("reviews.xlsx", XLSX, "Excel workbooks (.xlsx) are not supported: in Excel use File › Save As › CSV UTF-8"),
    ("reviews.csv", XLSX, "Excel workbooks (.xlsx) are not supported: "),
    ("notes.docx", DOCX, "Word documents (.docx) are not supported: "),
    ("rows.zip", ZIP, "Zip archives are not supported: unzip it"),
    ("chart.png", PNG, "Images (PNG) are not supported: "),
    ("photo.jpg", JPEG, "Images (JPEG) are not supported: "),
    ("reviews.pdf.gz", gzip.compress(PDF), "This gzip file contains a PDF file. PDF files are not supported: "),
    ("reviews.csv.gz", gzip.compress(XLSX), "This gzip file contains an Excel workbook (.xlsx). Excel workbooks"),
    ("reviews.csv", RANDOM, "Binary files are not supported: "),
    ("reviews.xls", RANDOM, "Excel 97-2003 workbooks (.xls) are not supported: "),  # binary: the name tells
]


@pytest.mark.parametrize(("name", "data", "start"), UNSUPPORTED, ids=[f"{n}-{i}" for i, (n, _, _) in
                                                                      enumerate(UNSUPPORTED)])
def test_each_kind_is_named_before_any_parsing(name, data, start):
    with pytest.raises(IngestError) as refused:
        sniff_format(name, data)
    error = refused.value
    assert error.code == "unsupported_format"
    assert error.message.startswith(start), error.message
    assert "CSV" in error.message and "JSON Lines" in error.message and "Parquet" in error.message
    for parser_words in ("header", "lacks", "UTF-8 text", "%PDF"):
        assert parser_words not in error.message
    # The same through the reader a worker uses, before a single row is produced.
    with pytest.raises(IngestError, match="are not supported"):
        list(iter_rows(io.BytesIO(data), name, DatanetSchema(task_type="text-classification",
                                                              label_set=("positive", "negative"))))


def test_good_files_are_still_read_whatever_their_name():
    assert sniff_format("reviews.csv", b"text,label\nhello,positive\n").format is FileFormat.CSV
    assert sniff_format("reviews.pdf", b"text,label\nhello,positive\n").format is FileFormat.CSV
    assert sniff_format("rows.jsonl.gz", gzip.compress(b'{"text": "hi"}\n')).format is FileFormat.JSONL
    # A real encoding problem is still named as one (UTF-16, Latin-1): the file is text, just not UTF-8.
    with pytest.raises(IngestError) as utf16:
        sniff_format("u.csv", "text,label\nhi,positive\n".encode("utf-16"))
    assert utf16.value.code == "not_utf8" and "UTF-16" in utf16.value.message
    latin1 = "text,label\n" + "".join(f"café numéro {i},positive\n" for i in range(50))
    with pytest.raises(IngestError) as latin:
        sniff_format("l.csv", latin1.encode("latin-1"))
    assert latin.value.code == "not_utf8"
    # A UTF-8 CSV with a stray control character is text, not binary.
    assert sniff_format("c.csv", b"text,label\nbell \x07 here,positive\n").format is FileFormat.CSV


# --- Through the upload and the contribution page ------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data", "start"), [UNSUPPORTED[0], UNSUPPORTED[2], UNSUPPORTED[6],
                                                      UNSUPPORTED[10]], ids=["pdf", "xlsx", "png", "binary"])
def test_an_upload_of_the_wrong_type_fails_with_the_reason_and_a_failed_step(name, data, start, alice, dora, client,
                                                                              datanet_factory,
                                                                              django_capture_on_commit_callbacks):
    datanet = datanet_factory(alice)
    client.force_login(dora)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("datanets:contribute", args=[datanet.slug]),
                               {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 302
    contribution = dora.contributions.get()
    assert contribution.state == ContributionState.FAILED
    assert (contribution.error_code, contribution.error_message[:len(start)]) == ("unsupported_format", start)
    assert not Record.objects.filter(contribution=contribution).exists()
    page = re.sub(r"\s+", " ", html.unescape(client.get(response.url).content.decode()))
    assert start in page
    steps = re.findall(r'<li data-step="(\w+)" data-status="(\w+)"', page)
    assert steps == [("received", "done"), ("validating", "done"), ("failed", "failed")]
    assert '<li data-step="failed" data-status="failed" aria-current="step">✗ Failed</li>' in page


@pytest.mark.django_db
def test_a_good_upload_shows_its_steps_in_order(alice, dora, client, datanet_factory,
                                                django_capture_on_commit_callbacks):
    datanet = datanet_factory(alice)
    with django_capture_on_commit_callbacks(execute=True):
        contribution = services.contribution_create_from_file(
            datanet=datanet, contributor=dora, uploaded_file=SimpleUploadedFile("ok.csv", b"text,label\nfine,positive\n"))
    contribution.refresh_from_db()
    client.force_login(dora)
    page = html.unescape(client.get(contribution.get_absolute_url()).content.decode())
    steps = re.findall(r'<li data-step="(\w+)" data-status="(\w+)"', page)
    assert steps == [("received", "done"), ("validating", "done"), ("in_review", "current"), ("done", "todo")]
    assert 'data-step="failed"' not in page


def test_random_bytes_of_every_size_never_reach_a_parser():
    rng = random.Random(7)
    for size in (16, 100, 1000, 70_000):
        data = rng.randbytes(size)
        if data.startswith(b"\x1f\x8b") or data.startswith(b"PAR1"):
            continue
        with pytest.raises(IngestError) as refused:
            sniff_format("x.csv", data)
        assert refused.value.code in ("unsupported_format", "not_utf8"), size
    with pytest.raises(IngestError, match="Binary files are not supported"):
        sniff_format("x.csv", os.urandom(0) + bytes(range(256)) * 8)
