"""Issue #22, item 13: "row" meant a line of the file, a position in a table and a global id, and a
contributor told "duplicate of row 330 already in this Datanet" could not act on it.

Now messages number a contributor's rows one way, by the line of their own file ("line 5", or "row 5"
for uploads without lines), and a row already in the Datanet is shown by its text when the contributor
may see it (their own row, with where it was in which upload; an accepted row of a Datanet they can
view) or called another contributor's row otherwise, never by its id. The row-errors CSV (page and API)
carries each rejected row's content besides its line and message."""

import csv
import html
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datanets import services
from datanets.models import Record, RecordStatus, RowError

pytestmark = pytest.mark.django_db

FIRST = "The sturdy kettle boils fast and pours cleanly every time"
SECOND = "The noisy blender rattles the whole counter when it runs"


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    def run(datanet, user, content: bytes, name="reviews.csv"):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = services.contribution_create_from_file(
                datanet=datanet, contributor=user, uploaded_file=SimpleUploadedFile(name, content))
        contribution.refresh_from_db()
        return contribution

    return run


def messages(contribution) -> dict[int, str]:
    return dict(contribution.row_errors.values_list("line_number", "message"))


def test_a_duplicate_within_the_upload_names_the_line_of_the_file(alice, dora, datanet_factory, send):
    datanet = datanet_factory(alice)
    # Line 1 header, line 2 blank, so data-row counts and lines differ.
    contribution = send(datanet, dora, (f"text,label\n\n{FIRST},positive\n{SECOND},negative\n"
                                       f"{FIRST},positive\n{SECOND},positive\n").encode())
    assert messages(contribution) == {5: "Line 5: exact duplicate of line 3 of this upload"}
    conflict = Record.objects.get(contribution=contribution, line_number=6)
    assert [f["message"] for f in conflict.quality["flags"]] == [
        "Line 6: the same text appears on line 4 of this upload with the label 'negative'"]


def test_a_duplicate_of_your_own_row_shows_its_text_and_where_it_was(alice, dora, datanet_factory, send):
    datanet = datanet_factory(alice)
    send(datanet, dora, f"text,label\n{SECOND},negative\n{FIRST},positive\n".encode(), name="first-batch.csv")
    earlier = Record.objects.get(datanet=datanet, fields__text=FIRST)
    again = send(datanet, dora, f"text,label\n{FIRST},positive\n".encode(), name="second-batch.csv")
    message = messages(again)[2]
    assert message == (f"Line 2: exact duplicate of your row “{FIRST}” already in this Datanet "
                       "(line 3 of your upload “first-batch.csv”)")
    assert not re.search(rf"\brow {earlier.pk}\b", message)


def test_someone_elses_row_is_shown_only_when_you_may_see_it(alice, dora, charlie, datanet_factory, send):
    datanet = datanet_factory(alice)
    send(datanet, dora, f"text,label\n{FIRST},positive\n{SECOND},negative\n".encode())
    accepted = Record.objects.get(datanet=datanet, fields__text=FIRST)
    services.records_review(datanet=datanet, reviewer=alice, record_ids=[accepted.pk], decision="accept")
    pending = Record.objects.get(datanet=datanet, fields__text=SECOND)
    assert pending.status == RecordStatus.PENDING

    upload = send(datanet, charlie, f"text,label\n{FIRST},positive\n{SECOND},negative\n".encode())
    found = messages(upload)
    # Accepted in a public Datanet: anyone can read it in the data viewer, so its text is shown.
    assert found[2] == f"Line 2: exact duplicate of a row already in this Datanet, “{FIRST}”"
    # Still in review: only Dora and the curators may read it.
    assert found[3] == "Line 3: exact duplicate of another contributor's row already in this Datanet"
    assert SECOND not in found[3]
    assert not any(re.search(rf"\brow {pk}\b", m) for m in found.values() for pk in (accepted.pk, pending.pk))
    # The duplicate's target is still recorded for curators and the API.
    assert set(upload.row_errors.values_list("duplicate_of_id", flat=True)) == {accepted.pk, pending.pk}

    # The owner curates: every row of the Datanet is hers to read.
    owners = send(datanet, alice, f"text,label\n{SECOND},negative\n".encode())
    assert messages(owners)[2] == f"Line 2: exact duplicate of a row already in this Datanet, “{SECOND}”"


def test_a_near_duplicate_flag_names_the_line_or_the_text(alice, dora, datanet_factory, send):
    datanet = datanet_factory(alice)
    text = "The blender is loud but it crushes ice in seconds and cleans up easily after smoothies every morning"
    contribution = send(datanet, dora, (f"text,label\n{text},positive\n\n"
                                       f"{text.replace('every morning', 'every single morning')},positive\n").encode())
    flagged = Record.objects.get(contribution=contribution, line_number=4)
    assert re.fullmatch(r"Line 4: \d+% similar to line 2 of this upload", flagged.quality["flags"][0]["message"])
    later = send(datanet, dora, f"text,label\n{text.replace('every morning', 'each morning')},positive\n".encode())
    flag = Record.objects.get(contribution=later).quality["flags"][0]["message"]
    assert re.fullmatch(r"Line 2: \d+% similar to your row “The blender is loud.*” already in this Datanet "
                        r"\(line 2 of your upload “reviews.csv”\)", flag), flag


def test_the_errors_csv_and_page_carry_each_rejected_rows_content(alice, dora, datanet_factory, send, client,
                                                                   key_client):
    datanet = datanet_factory(alice)
    content = (f"text,label\n{FIRST},positive\n"
               "Broke after a week,terrible\n"          # line 3: unknown label
               ",negative\n"                            # line 4: empty text
               "a,b,c,d\n"                              # line 5: too many fields
               f"{FIRST},positive\n"                    # line 6: duplicate of line 2
               "=HYPERLINK(\"http://evil\"),neutral\n")  # line 7: unknown label, formula-looking text
    contribution = send(datanet, dora, content.encode())
    expected = {
        "3": {"text": "Broke after a week", "label": "terrible", "raw": ""},
        "4": {"text": "", "label": "negative", "raw": ""},
        "5": {"text": "", "label": "", "raw": "a,b,c,d"},
        "6": {"text": FIRST, "label": "positive", "raw": ""},
        "7": {"text": "'=HYPERLINK(\"http://evil\")", "label": "neutral", "raw": ""},
    }
    page_url = reverse("datanets:contribution_errors_csv", args=[datanet.slug, contribution.pk])
    api_url = f"/api/v1/datanets/{datanet.slug}/contributions/{contribution.pk}/errors.csv"
    client.force_login(dora)
    for response in (client.get(page_url), key_client(dora, "read").get(api_url)):
        assert response.status_code == 200
        body = b"".join(response.streaming_content) if response.streaming else response.content
        table = list(csv.DictReader(io.StringIO(body.decode())))
        assert list(table[0]) == ["row", "line", "code", "message", "text", "label", "raw"]
        assert [r["line"] for r in table] == ["3", "4", "5", "6", "7"]
        assert {r["line"]: {k: r[k] for k in ("text", "label", "raw")} for r in table} == expected
        assert table[3]["message"] == "Line 6: exact duplicate of line 2 of this upload"
        assert all(r["message"].startswith(f"Line {r['line']}:") for r in table)

    page = re.sub(r"\s+", " ", html.unescape(client.get(contribution.get_absolute_url()).content.decode()))
    errors = re.search(r'<table id="row-errors">(.*?)</table>', page).group(1)
    assert "<th>Where in your file</th>" in errors and "<td>Line 3</td>" in errors
    assert '<span class="muted">label:</span> terrible' in errors
    assert '<span class="muted">raw:</span> a,b,c,d' in errors
    yours = re.search(r'<table id="rows">(.*?)</table>', page).group(1)
    assert "<td>Line 2</td>" in yours


def test_rows_without_lines_are_numbered_by_row_and_unparsable_lines_keep_their_text(alice, dora, datanet_factory,
                                                                                    send, upload_rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    datanet = datanet_factory(alice)
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": [FIRST, SECOND, FIRST], "label": ["positive", "negative", "positive"]}), buffer)
    parquet = send(datanet, dora, buffer.getvalue(), name="rows.parquet")
    error = parquet.row_errors.get()
    assert error.message == "Row 3: exact duplicate of row 1 of this upload" and error.where == "row 3"
    assert error.content == {"text": FIRST, "label": "positive"} and error.line_number is None
    # Rows sent as JSON (API or form) are stored as JSON Lines: row N is line N, and a row that is not an
    # object keeps its JSON text.
    api_rows = upload_rows(datanet, dora, [{"text": "fresh words", "label": "positive"}, ["not", "an", "object"]])
    assert api_rows.row_errors.get().content == {"raw": '["not", "an", "object"]'}
    jsonl = send(datanet, dora, b'{"text": "fine words here", "label": "positive"}\n{"text": oops}\n',
                 name="rows.jsonl")
    bad = RowError.objects.get(contribution=jsonl)
    assert (bad.line_number, bad.code, bad.content) == (2, "bad_json", {"raw": '{"text": oops}'})
