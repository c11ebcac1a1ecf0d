"""Hostile uploads, end to end: through the browser form (`/datanets/<slug>/contribute/`) and the API
(`POST /api/v1/datanets/<slug>/contributions/`, multipart `file`), with validation run by the real task
once the request's transaction commits. (`tests/engine_ingest/test_ingest_hostile.py` tests the engine
on its own; these go through HTTP, storage and the database.)

Every hostile file is refused with a clear message, at the request (400 / the form's error) or by
validation (the contribution ends `failed` with an error code and a sentence saying what to do), or, for
a bad row among good ones, that row alone is rejected with its line number. Nothing is half-written: a
refused file leaves no rows, and every file in storage belongs to a contribution (no orphans), stored
under its sha256, never under a name the uploader chose. Memory stays bounded for a gzip bomb.
"""

import gzip
import io
import json
import resource
import tracemalloc
import zipfile
import zlib

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
PATHS = ("form", "api")
# Python-level allocations while a 100 MB gzip bomb is uploaded and validated, and the growth of the
# process's peak resident memory: the bomb inflates 1000-fold, the server holds neither.
BOMB_TRACED_PEAK_BOUND = 16 * MB
BOMB_RSS_GROWTH_BOUND = 64 * MB


def gzip_bomb(decompressed_mb: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(b"text,label\n")]
    block = b"a," * (MB // 2)
    parts += [compressor.compress(block) for _ in range(decompressed_mb)]
    return b"".join(parts) + compressor.flush()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rows.csv", "text,label\nhello,positive\n")
    return buffer.getvalue()


ROWS_CSV = b"text,label\n" + b"".join(b"review number %d is fine,positive\n" % i for i in range(5000))
# (name, file name, bytes, expected error code): each whole file is refused by validation.
REFUSED_FILES = [
    ("truncated gzip", "rows.csv.gz", gzip.compress(ROWS_CSV)[:4000], "truncated_gzip"),
    ("gzip bomb", "rows.csv.gz", gzip_bomb(100), "gzip_ratio"),
    ("binary named csv (PNG)", "rows.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "unsupported_format"),
    ("zip named jsonl", "rows.jsonl", zip_bytes(), "unsupported_format"),
    ("UTF-16 named csv", "rows.csv", "text,label\nhello,positive\n".encode("utf-16"), "not_utf8"),
    ("Latin-1 text", "rows.csv", "text,label\ncafé crème brûlée,positive\n".encode("latin-1"), "not_utf8"),
    ("a JSON array named .json", "rows.json", b'[{"text": "a", "label": "positive"}]', "json_array"),
]
# (name, file name, bytes, expected row rejection code): the bad row is rejected, the good one kept.
GOOD_LINE = b'{"text": "this one is fine", "label": "positive"}\n'
REJECTED_ROWS = [
    ("billion-laughs depth", "rows.jsonl", b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b', "label": "positive"}\n',
     "too_deep"),
    ("a wide object", "rows.jsonl", json.dumps({"text": "a", "label": "positive", **{f"k{i}": i for i in range(5000)}})
     .encode() + b"\n", "too_many_columns"),
    ("a huge single line", "rows.jsonl", b'{"text": "' + b"a" * (2 * MB) + b'", "label": "positive"}\n',
     "line_too_long"),
    ("malformed JSON", "rows.jsonl", b'{"text": "a", "label": "positive"\n', "bad_json"),
]


@pytest.fixture
def datanet(alice):
    from datanets.services import datanet_create

    return datanet_create(owner=alice, name="Hostile", task_type="text-classification",
                          label_set=["positive", "negative"])


@pytest.fixture
def upload(datanet, alice, api_key_for, django_capture_on_commit_callbacks):
    """`upload(path, file_name, data)` -> (response, the new contribution or None), validation run."""
    from datanets.models import Contribution

    page = Client()
    page.force_login(alice)
    _, secret = api_key_for(alice, "contribute", "read")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    def send(path, file_name, data):
        before = set(Contribution.objects.values_list("pk", flat=True))
        file = io.BytesIO(data)
        file.name = file_name
        with django_capture_on_commit_callbacks(execute=True):
            if path == "form":
                response = page.post(reverse("datanets:contribute", args=[datanet.slug]), {"file": file})
            else:
                response = api.post(reverse("datanets-api-contributions", args=[datanet.slug]), {"file": file},
                                    format="multipart")
        created = Contribution.objects.exclude(pk__in=before)
        assert created.count() <= 1
        contribution = created.first()
        if contribution is not None:
            contribution.refresh_from_db()
        return response, contribution

    return send


def assert_no_orphans():
    """Every stored upload belongs to a contribution, under its content address."""
    from datanets.models import Contribution

    stored = set()
    if default_storage.exists("contributions"):
        for first in default_storage.listdir("contributions")[0]:
            for second in default_storage.listdir(f"contributions/{first}")[0]:
                for name in default_storage.listdir(f"contributions/{first}/{second}")[1]:
                    stored.add(f"contributions/{first}/{second}/{name}")
    referenced = set(Contribution.objects.values_list("storage_name", flat=True))
    assert stored <= referenced, f"orphaned files in storage: {sorted(stored - referenced)}"
    for name in stored:
        assert len(name.rsplit("/", 1)[1]) == 64, name  # a sha256, not a name the uploader chose


def assert_accepted_status(path, response):
    if path == "form":
        assert response.status_code == 302, response.content[:500]
    else:
        assert response.status_code == 202, response.content[:500]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("label", "file_name", "data", "code"), REFUSED_FILES, ids=[c[0] for c in REFUSED_FILES])
def test_hostile_file_is_refused_whole_with_a_clear_message(upload, path, label, file_name, data, code):
    from datanets.models import ContributionState, Record

    response, contribution = upload(path, file_name, data)
    assert_accepted_status(path, response)  # stored and queued; validation decides
    assert contribution.state == ContributionState.FAILED
    assert contribution.error_code == code
    assert len(contribution.error_message) > 30 and "Traceback" not in contribution.error_message
    assert Record.objects.filter(contribution=contribution).count() == 0
    assert contribution.row_errors.count() == 0
    assert_no_orphans()
    # The contributor reads the same message on the contribution's page and from the API.
    page = Client()
    page.force_login(contribution.contributor)
    shown = page.get(reverse("datanets:contribution", args=[contribution.datanet.slug, contribution.pk]))
    assert contribution.error_message.split(".")[0].encode() in shown.content.replace(b"&#x27;", b"'")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("label", "file_name", "data", "code"), REJECTED_ROWS, ids=[c[0] for c in REJECTED_ROWS])
def test_hostile_row_is_rejected_alone_with_its_line(upload, path, label, file_name, data, code):
    from datanets.models import Record

    response, contribution = upload(path, file_name, data + GOOD_LINE)
    assert_accepted_status(path, response)
    assert contribution.rows_rejected == 1 and contribution.rows_accepted == 1
    error = contribution.row_errors.get()
    assert error.code == code and error.line_number == 1 and error.message.startswith("Line 1:")
    assert [r.fields["text"] for r in Record.objects.filter(contribution=contribution)] == ["this one is fine"]
    assert_no_orphans()


def test_gzip_bomb_memory_stays_bounded(upload, settings):
    """A 100 KB file that would inflate to 200 MB: refused early, without the server holding it."""
    from datanets.models import ContributionState

    bomb = gzip_bomb(200)
    assert len(bomb) < 512 * 1024
    # One ordinary gzip upload first, through both paths: what the first request of a process loads (the
    # URLconf, and through it torch) is not the bomb's doing; only the bomb's own cost is measured.
    for path in PATHS:
        upload(path, "warm.csv.gz", gzip.compress(b"text,label\na warm-up row,positive\n"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        _, contribution = upload("api", "rows.csv.gz", bomb)
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    print(f"gzip bomb ({len(bomb) // 1024} KB -> 200 MB): traced peak {traced_peak / MB:.2f} MB, "
          f"peak RSS growth {rss_growth / MB:.1f} MB")  # figures for docs/reliability.md (pytest -s)
    assert contribution.state == ContributionState.FAILED and contribution.error_code == "gzip_ratio"
    assert traced_peak < BOMB_TRACED_PEAK_BOUND, f"traced peak {traced_peak / MB:.1f} MB"
    assert rss_growth < BOMB_RSS_GROWTH_BOUND, f"peak RSS grew {rss_growth / MB:.1f} MB"
    # With the ratio check relaxed, the decompressed-size limit stops it instead, as early.
    settings.DATANETS_MAX_GZIP_RATIO = 1e9
    settings.DATANETS_MAX_DECOMPRESSED_BYTES = 5 * MB
    tracemalloc.start()
    try:
        _, contribution = upload("form", "other.csv.gz", gzip_bomb(201))
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"size-limited bomb: traced peak {traced_peak / MB:.2f} MB")
    assert contribution.error_code == "decompressed_too_large"
    assert "Split it into smaller files" in contribution.error_message
    assert traced_peak < BOMB_TRACED_PEAK_BOUND, f"traced peak {traced_peak / MB:.1f} MB"


@pytest.mark.parametrize("path", PATHS)
def test_too_large_and_empty_files_are_refused_at_the_door_and_nothing_is_stored(upload, path, settings):
    from datanets.models import Contribution

    settings.DATANETS_MAX_UPLOAD_BYTES = 1 * MB
    for data, message in ((ROWS_CSV * 14, b"larger than the 1 MB limit"), (b"", b"is empty")):
        response, contribution = upload(path, "rows.csv", data)
        assert contribution is None
        if path == "api":
            assert response.status_code == 400
            body = response.json()
            assert set(body) == {"code", "detail", "fields"} and body["code"] == "invalid"
            text = json.dumps(body).encode()
        else:
            assert response.status_code == 200  # the form again, with the reason
            text = response.content
        assert message in text, text[:800]
    assert Contribution.objects.count() == 0
    assert not default_storage.exists("contributions") or not default_storage.listdir("contributions")[0]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("file_name", ["../../etc/passwd", "..\\..\\windows\\win.ini", "/abs/path/rows.csv",
                                       "rows\x00.csv", "<script>alert(1)</script>.csv"])
def test_path_like_file_names_are_display_only(upload, path, file_name, tmp_path, settings):
    from datanets.models import ContributionState

    response, contribution = upload(path, file_name, b"text,label\nhello there,positive\n")
    assert_accepted_status(path, response)
    assert contribution.state == ContributionState.IN_REVIEW
    shown = contribution.file_name
    assert "/" not in shown and "\\" not in shown and "\x00" not in shown and shown.strip()
    assert contribution.storage_name == f"contributions/{contribution.file_sha256[:2]}/" \
                                        f"{contribution.file_sha256[2:4]}/{contribution.file_sha256}"
    # Nothing was written outside the media directory, and nothing under the name the uploader chose.
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(p).startswith(("media/contributions/", "cache/", "datanets-cache/")) for p in written), written
    assert not any("passwd" in str(p) or "win.ini" in str(p) for p in written)
    assert_no_orphans()
    page = Client()
    page.force_login(contribution.contributor)
    html = page.get(reverse("datanets:contribution", args=[contribution.datanet.slug, contribution.pk])).content
    assert b"<script>alert(1)</script>" not in html


@pytest.mark.parametrize("path", PATHS)
def test_files_that_lie_about_their_type_are_read_as_what_they_are(upload, path):
    """A real data file with the wrong name (gzip without `.gz`, Parquet named `.csv`) is read as what it
    is and a note says so; content that is no data file at all is refused (see REFUSED_FILES)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": ["parquet row one", "parquet row two"], "label": ["positive", "negative"]}),
                   buffer)
    for file_name, data, really in (("rows.csv", gzip.compress(b"text,label\ngzipped row,positive\n"), "gzip"),
                                    ("rows.csv", buffer.getvalue(), "parquet")):
        response, contribution = upload(path, file_name, data)
        assert_accepted_status(path, response)
        assert contribution.rows_accepted >= 1 and contribution.rows_rejected == 0
        assert any(really in note.lower() for note in contribution.notes), contribution.notes


def test_formula_injection_is_neutralised_in_every_csv_export(upload, alice, datanet, api_key_for):
    from datanets.models import Record
    from datanets.services import records_review, version_publish

    formulas = ['=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)"]
    lines = "".join(json.dumps({"text": f, "label": "positive"}) + "\n" for f in formulas)
    bad_label = json.dumps({"text": "a fine row", "label": "=1+1"}) + "\n"
    _, contribution = upload("api", "rows.jsonl", (lines + bad_label).encode())
    assert contribution.rows_accepted == len(formulas) and contribution.rows_rejected == 1
    records_review(datanet=datanet, reviewer=alice, decision="accept",
                   record_ids=Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
    version_publish(datanet=datanet, actor=alice)
    page = Client()
    page.force_login(alice)
    _, secret = api_key_for(alice, "read")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    exports = {
        "page download": page.get(reverse("datanets:version_download", args=[datanet.slug, 1, "csv"])),
        "API download": api.get(reverse("datanets-api-version-download", args=[datanet.slug, 1]), {"format": "csv"}),
        "page errors.csv": page.get(reverse("datanets:contribution_errors_csv", args=[datanet.slug, contribution.pk])),
        "API errors.csv": api.get(reverse("datanets-api-contribution-errors-csv", args=[datanet.slug, contribution.pk])),
    }
    import csv

    bodies = {}
    for name, response in exports.items():
        assert response.status_code == 200, name
        body = bodies[name] = b"".join(response.streaming_content) if response.streaming else response.content
        cells = [cell for row in csv.reader(io.StringIO(body.decode())) for cell in row]
        dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert not dangerous, f"{name}: cells that a spreadsheet would run: {dangerous}"
    assert "'=HYPERLINK" in bodies["API download"].decode()  # kept, but as text


def test_deeply_nested_json_request_bodies_are_refused_not_crashed(alice, api_key_for, datanet, settings):
    """Billion-laughs style JSON sent as the request body itself, and a body past the size limit: a 400 in
    the error shape (OpenAI's under /v1/), never a 500 or a crashed process."""
    from datanets.models import Contribution

    _, secret = api_key_for(alice, "contribute", "infer")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    nested = '{"rows": [{"text": ' + "[" * 200_000 + "]" * 200_000 + ', "label": "positive"}]}'
    for url in (reverse("datanets-api-contributions", args=[datanet.slug]), reverse("datanets-api-list")):
        response = api.post(url, nested, content_type="application/json")
        assert response.status_code == 400, response.content[:300]
        body = response.json()
        assert set(body) == {"code", "detail", "fields"} and body["code"] == "parse_error"
        assert "nested deeper than" in body["detail"]
    openai = api.post("/v1/chat/completions", nested, content_type="application/json")
    assert openai.status_code == 400 and openai.json()["error"]["code"] == "invalid_json"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1 * MB
    big = json.dumps({"rows": [{"text": "x" * 1000, "label": "positive"}] * 2000})
    response = api.post(reverse("datanets-api-contributions", args=[datanet.slug]), big,
                        content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert set(body) == {"code", "detail", "fields"} and "larger than 1 MB" in body["detail"]
    openai = api.post("/v1/chat/completions", big, content_type="application/json")
    assert openai.status_code == 400 and "larger than 1 MB" in openai.json()["error"]["message"]
    assert Contribution.objects.count() == 0
