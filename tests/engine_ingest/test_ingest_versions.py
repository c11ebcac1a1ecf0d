"""Published versions: deterministic, verifiable, diffable, exportable."""

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from datanets.ingest import (
    DatanetSchema,
    VersionManifest,
    VersionRow,
    canonical_json,
    diff_versions,
    export_version,
    iter_rows,
    iter_version_records,
    neutralise_formula,
    verify_version,
    write_version,
)
from datanets.ingest.versions import DATA_NAME, MANIFEST_NAME

SCHEMA = DatanetSchema("text-classification", ("pos", "neg"), ("source",))


def rows(ids, contributor=lambda i: f"user-{i % 3}"):
    return [
        VersionRow(
            i, contributor(i), {"text": f"row {i} text", "label": "pos" if i % 2 else "neg", "source": None}
        )
        for i in ids
    ]


@pytest.fixture
def version(tmp_path):
    manifest = write_version(rows(range(1, 31)), tmp_path / "v1", SCHEMA, {"datanet": "reviews", "number": 1})
    return tmp_path / "v1", manifest


def test_manifest_contents_and_determinism(tmp_path, version):
    directory, manifest = version
    assert manifest.row_count == 30 and manifest.row_ids == list(range(1, 31))
    assert manifest.counts_by_label == {"neg": 15, "pos": 15}
    assert manifest.counts_by_contributor == {"user-0": 10, "user-1": 10, "user-2": 10}
    assert manifest.schema == SCHEMA and manifest.meta == {"datanet": "reviews", "number": 1}
    assert manifest.parquet_bytes == (directory / DATA_NAME).stat().st_size
    again = write_version(rows(range(1, 31)), tmp_path / "again", SCHEMA, {"datanet": "reviews", "number": 1})
    assert again.version_id == manifest.version_id
    assert (tmp_path / "again" / DATA_NAME).read_bytes() == (directory / DATA_NAME).read_bytes()
    assert pq.ParquetFile(directory / DATA_NAME).metadata.metadata.keys() == {b"ARROW:schema"}
    with pytest.raises(FileExistsError):
        write_version(rows([1]), directory, SCHEMA, {})
    with pytest.raises(ValueError):
        write_version(rows([2, 1]), tmp_path / "unsorted", SCHEMA, {})


def test_verify_passes_then_detects_tampering(tmp_path, version):
    directory, manifest = version
    assert verify_version(directory, manifest.version_id).ok
    data = (directory / DATA_NAME).read_bytes()

    # Parquet rewritten with one changed row: bytes, rows hash and a content hash disagree.
    records = list(iter_version_records(directory))
    records[4]["text"] = "tampered"
    table = pq.read_table(directory / DATA_NAME).from_pylist(
        records, schema=pq.read_schema(directory / DATA_NAME)
    )
    pq.write_table(table, directory / DATA_NAME, compression="zstd")
    result = verify_version(directory, manifest.version_id)
    assert not result.ok and any("content_hash" in p for p in result.problems)
    assert any("sha256" in p for p in result.problems)
    (directory / DATA_NAME).write_bytes(data)

    # Manifest edited (a count changed) and re-serialised canonically: the id changes.
    body = json.loads((directory / MANIFEST_NAME).read_bytes())
    body["counts_by_contributor"]["user-0"] = 11
    (directory / MANIFEST_NAME).write_bytes(canonical_json(body))
    result = verify_version(directory, manifest.version_id)
    assert not result.ok and result.version_id != manifest.version_id
    assert any("counts_by_contributor" in p for p in result.problems)
    assert not verify_version(directory).ok  # inconsistent even without the expected id


def test_diff_versions(tmp_path, version):
    _, v1 = version
    v2 = write_version(
        rows(list(range(4, 31)) + [40, 41], lambda i: "new" if i >= 40 else f"user-{i % 3}"),
        tmp_path / "v2",
        SCHEMA,
        {"number": 2},
    )
    diff = diff_versions(v1, v2)
    assert diff.added_row_ids == [40, 41] and diff.removed_row_ids == [1, 2, 3]
    assert diff.added_by_contributor == {"new": 2}
    assert diff.removed_by_contributor == {"user-0": 1, "user-1": 1, "user-2": 1}
    assert VersionManifest.load(tmp_path / "v2").version_id == v2.version_id


def test_exports_round_trip_and_csv_neutralises_formulas(tmp_path):
    hostile = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tcmd", "safe text"]
    published = [VersionRow(i + 1, "c", {"text": t, "label": "pos"}) for i, t in enumerate(hostile)]
    write_version(published, tmp_path / "v", SCHEMA, {})
    csv_bytes = b"".join(export_version(tmp_path / "v", "csv"))
    cells = [row[3] for row in csv.reader(io.StringIO(csv_bytes.decode()))][1:]
    assert cells == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)", "'\tcmd", "safe text"]
    assert neutralise_formula("\rx") == "'\rx" and neutralise_formula(5) == 5
    jsonl = b"".join(export_version(tmp_path / "v", "jsonl")).decode().splitlines()
    assert [json.loads(line)["text"] for line in jsonl] == hostile  # byte-faithful: no neutralising
    parquet = b"".join(export_version(tmp_path / "v", "parquet"))
    assert parquet == (tmp_path / "v" / DATA_NAME).read_bytes()
    # An exported version re-ingests into the same Datanet (extra columns are ignored with a note).
    stream = iter_rows(io.BytesIO(parquet), "export.parquet", SCHEMA)
    assert [r.fields["text"] for r in stream] == [t.strip() for t in hostile]
    assert "row_id" in stream.notes[0]
