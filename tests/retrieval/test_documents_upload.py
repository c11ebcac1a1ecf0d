"""Document uploads take the table rows' pipeline from the reader on (issue #19, item 1): hostile and broken
documents each cost only themselves, with the engine's code and message; an upload that is one unreadable
document fails as a whole, like a table file that cannot be parsed; the same passage from another document
or another contributor is a duplicate, an edited one a near duplicate."""

import gzip
import io
import zipfile

import pytest
from django.core.exceptions import ValidationError
from documents_support import HTML_PAGE, PDF_PAGES, simple_docx, text_pdf, uploaded
from documents_support import training_docx as make_training_docx

from datanets.models import ContributionState, Record, RecordStatus, RowError
from datanets.services import contribution_create_from_documents, contribution_create_from_rows

pytestmark = pytest.mark.django_db


def zip_of(entries):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def errors_by_document(contribution):
    return {error.content["document"]: (error.code, error.message) for error in contribution.row_errors.all()}


def test_each_hostile_document_is_one_clear_error_and_the_readable_ones_are_kept(documents_datanet, alice, dora,
                                                                                 contribute_documents):
    from document_builders import image_only_pdf, lying_size_docx

    datanet = documents_datanet(alice)
    contribution = contribute_documents(datanet, dora, {
        "guide.html": HTML_PAGE,
        "scan.pdf": image_only_pdf(),
        "bomb.docx": lying_size_docx(100),  # headers claim 1,000 bytes for 100 MB of XML
        "actually-a-pdf.docx": text_pdf([["A PDF wearing a Word name."]]),
        "rows.csv": b"text,label\nhello,positive\n",
        "empty.txt": b"   \n",
        "training.docx": make_training_docx(),
    })
    assert contribution.state == ContributionState.IN_REVIEW
    errors = errors_by_document(contribution)
    assert {name: code for name, (code, _) in errors.items()} == {
        "scan.pdf": "no_text_layer", "bomb.docx": "corrupt_docx", "actually-a-pdf.docx": "wrong_extension",
        "rows.csv": "unsupported_format", "empty.txt": "empty_document",
    }
    assert "OCR" in errors["scan.pdf"][1] and errors["scan.pdf"][1].startswith("“scan.pdf”: ")
    assert "its content is a PDF file" in errors["actually-a-pdf.docx"][1]
    assert "Files ending in .csv are not documents" in errors["rows.csv"][1]
    kept = Record.objects.filter(contribution=contribution)
    assert {r.fields["document"] for r in kept} == {"guide.html", "training.docx"}
    assert kept.count() == contribution.rows_accepted and contribution.rows_rejected == 5
    # The report names each refused document where a table report names a line.
    assert sorted(error.where for error in contribution.row_errors.all()) == sorted(f"“{name}”" for name in errors)


def test_an_upload_of_one_unreadable_document_fails_with_the_engines_message(documents_datanet, alice, dora,
                                                                             contribute_documents):
    datanet = documents_datanet(alice)
    contribution = contribute_documents(datanet, dora, {"locked.pdf": text_pdf([["Secret."]], password="pw")})
    assert contribution.state == ContributionState.FAILED
    assert contribution.error_code == "encrypted_pdf"
    assert contribution.error_message.startswith("This PDF is protected by a password.")
    assert not Record.objects.filter(datanet=datanet).exists()


def test_a_contributors_own_zip_is_read_member_by_member(documents_datanet, alice, dora, contribute_documents):
    datanet = documents_datanet(alice)
    bundle = zip_of({
        "handbook/coastal.pdf": text_pdf(PDF_PAGES),
        "handbook/nested.zip": zip_of({"inner.txt": b"Never opened."}),
        "__MACOSX/handbook/._coastal.pdf": b"\x00\x05\x16\x07",
        "notes.md": b"# Notes\n\n## Tides\n\nSpring tides follow the full and the new moon.\n",
        "handbook/buoys.txt.gz": gzip.compress(b"Buoys are painted yellow and lit at night."),
    })
    contribution = contribute_documents(datanet, dora, {"handbook.zip": bundle})
    assert contribution.state == ContributionState.IN_REVIEW
    documents = set(Record.objects.filter(contribution=contribution).values_list("fields__document", flat=True))
    assert documents == {"handbook/coastal.pdf", "notes.md", "handbook/buoys.txt.gz"}
    assert Record.objects.get(contribution=contribution, fields__document="notes.md").fields["anchor"] == "Notes › Tides"
    assert errors_by_document(contribution)["handbook/nested.zip"][0] == "unsupported_format"
    assert any("archiver bookkeeping" in note for note in contribution.notes)


def test_a_zip_without_documents_and_a_damaged_zip_fail_with_a_reason(documents_datanet, alice, dora,
                                                                      contribute_documents):
    datanet = documents_datanet(alice)
    empty = contribute_documents(datanet, dora, {"empty.zip": zip_of({"__MACOSX/._x": b"x", "folder/.DS_Store": b"x"})})
    assert (empty.state, empty.error_code) == (ContributionState.FAILED, "no_documents")
    damaged = contribute_documents(datanet, dora, {"cut.zip": zip_of({"a.txt": b"Some text. " * 100})[:-30]})
    assert (damaged.state, damaged.error_code) == (ContributionState.FAILED, "corrupt_zip")
    assert "damaged" in damaged.error_message


def test_rows_are_refused_by_a_documents_datanet_and_documents_by_a_datanet_of_rows(documents_datanet, alice, dora,
                                                                                    key_client):
    datanet = documents_datanet(alice)
    with pytest.raises(ValidationError, match="takes documents, not rows"):
        contribution_create_from_rows(datanet=datanet, contributor=dora, rows=[{"text": "x", "document": "y"}])
    api = key_client(dora, "contribute")
    refused = api.post(f"/api/v1/datanets/{datanet.slug}/contributions/", {"rows": [{"text": "x"}]}, format="json")
    assert refused.status_code == 400 and "takes documents, not rows" in refused.json()["detail"]
    from datanets.services import datanet_create

    rows_datanet = datanet_create(owner=alice, name="Plain text", task_type="text")
    with pytest.raises(ValidationError, match="takes rows, not documents"):
        contribution_create_from_documents(datanet=rows_datanet, contributor=dora,
                                           uploaded_files=[uploaded("a.pdf", text_pdf([["Hello."]]))])
    with pytest.raises(ValidationError, match="The file is empty. Choose a document with text in it."):
        contribution_create_from_documents(datanet=datanet, contributor=dora, uploaded_files=[uploaded("a.txt", b"")])


def test_the_same_passages_from_another_contributor_are_duplicates_and_an_edit_is_a_near_duplicate(
        documents_datanet, alice, dora, charlie, make_user, contribute_documents):
    datanet = documents_datanet(alice)
    paragraph = ("Harbour pilots board incoming tankers two miles offshore, climbing a rope ladder from the pilot "
                 "boat while both vessels keep a steady eight knots, and then guide the ship past the sandbanks, "
                 "the breakwater and the old ferry pier to its berth at the oil terminal.")
    first = contribute_documents(datanet, dora, {"pilots.md": f"# Pilots\n\n{paragraph}\n".encode()})
    assert first.rows_accepted == 1
    original = Record.objects.get(contribution=first)

    # The same passage under another name, from another contributor: refused as a duplicate, named without
    # its text (the stranger may not read a row that is still in review).
    copy = contribute_documents(datanet, charlie, {"copied.md": f"# Pilots\n\n{paragraph}\n".encode()})
    assert (copy.state, copy.rows_accepted, copy.rows_duplicate) == (ContributionState.DONE, 0, 1)
    duplicate = RowError.objects.get(contribution=copy)
    assert duplicate.code == "duplicate" and duplicate.duplicate_of == original
    assert duplicate.message == ("Passage 1 of “copied.md” (Pilots): exact duplicate of another contributor's row "
                                 "already in this Datanet")
    assert duplicate.where == "“copied.md”, Pilots"
    again = contribute_documents(datanet, dora, {"pilots-v2.md": f"# Pilots\n\n{paragraph}\n".encode()})
    assert RowError.objects.get(contribution=again).message == (
        f"Passage 1 of “pilots-v2.md” (Pilots): exact duplicate of your passage “{original.fields['text'][:79]}…” already in "
        "this Datanet (“pilots.md”, Pilots, in your upload “pilots.md”)")

    # One word changed: accepted into review, flagged as a near duplicate of the original.
    erin = make_user("erin")  # outside the cast: a third contributor (dora and charlie have uploaded it already)
    edited = contribute_documents(datanet, erin, {"edit.md": f"# Pilots\n\n{paragraph.replace('eight', 'nine')}\n".encode()})
    assert (edited.rows_accepted, edited.rows_near_duplicate) == (1, 1)
    near = Record.objects.get(contribution=edited)
    assert near.near_duplicate_of == original and near.status == RecordStatus.PENDING
    assert "similar to another contributor's row" in near.quality["flags"][0]["message"]


def test_a_passage_repeated_across_documents_of_one_upload_is_a_duplicate_of_the_first(documents_datanet, alice, dora,
                                                                                      contribute_documents):
    datanet = documents_datanet(alice)
    shared = "Radio checks happen every hour on channel 16, and each boat answers with its call sign."
    contribution = contribute_documents(datanet, dora, {
        "a.txt": shared.encode(), "b.docx": simple_docx(shared)})
    assert (contribution.rows_accepted, contribution.rows_duplicate) == (1, 1)
    error = RowError.objects.get(contribution=contribution)
    assert error.message == ("Passage 1 of “b.docx”: exact duplicate of passage 1 of “a.txt” of this upload")
    assert error.duplicate_of == Record.objects.get(contribution=contribution)


def test_one_document_is_stored_as_it_came_and_several_as_one_zip_under_unique_names(documents_datanet, alice, dora,
                                                                                     contribute_documents):
    from django.core.files.storage import default_storage

    datanet = documents_datanet(alice)
    single = contribute_documents(datanet, dora, {"guide.html": HTML_PAGE})
    assert single.file_name == "guide.html" and single.rows_accepted == 2
    with default_storage.open(single.storage_name, "rb") as stored:
        assert stored.read() == HTML_PAGE
    several = contribution_create_from_documents(datanet=datanet, contributor=dora, uploaded_files=[
        uploaded("notes.txt", b"Buoys are painted yellow."), uploaded("notes.txt", b"Chains are galvanised steel."),
        uploaded("sub/notes.txt", b"Anchors weigh two tonnes.")])
    assert several.file_name == "3 documents.zip"
    with default_storage.open(several.storage_name, "rb") as stored, zipfile.ZipFile(stored) as archive:
        assert [(info.filename, info.compress_type) for info in archive.infolist()] == [
            ("notes.txt", zipfile.ZIP_STORED), ("notes (2).txt", zipfile.ZIP_STORED), ("notes (3).txt", zipfile.ZIP_STORED)]


def test_a_table_row_with_a_document_column_is_still_named_by_its_row(alice, dora, django_capture_on_commit_callbacks):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datanets.services import contribution_create_from_file, datanet_create

    datanet = datanet_create(owner=alice, name="Sourced notes", task_type="text", metadata_columns=["document"])
    parquet = io.BytesIO()
    pq.write_table(pa.table({"text": ["A note.", None], "document": ["source.pdf", "other.pdf"]}), parquet)
    with django_capture_on_commit_callbacks(execute=True):  # Parquet rows have no lines: named "row N"
        contribution = contribution_create_from_file(datanet=datanet, contributor=dora,
                                                     uploaded_file=uploaded("notes.parquet", parquet.getvalue()))
    assert Record.objects.get(contribution=contribution).where == "row 1"
    assert RowError.objects.get(contribution=contribution).where == "row 2"
