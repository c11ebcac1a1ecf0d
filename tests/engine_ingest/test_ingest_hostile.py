"""Hostile and broken uploads end in a clear IngestError or a per-row rejection, never a crash."""

import gzip
import io
import json
import os
import tracemalloc
import zipfile
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datanets.ingest import DatanetSchema, IngestError, IngestLimits, RejectionCode, iter_rows
from datanets.ingest.sniff import FileFormat
from datanets.ingest.streams import iter_gunzipped

SCHEMA = DatanetSchema("text-classification", ("pos", "neg"))
MB = 1024 * 1024


def read(data, filename, limits=None, schema=SCHEMA):
    return list(iter_rows(io.BytesIO(data), filename, schema, limits))


def ingest_error(data, filename, limits=None):
    with pytest.raises(IngestError) as caught:
        read(data, filename, limits)
    return caught.value


def gzip_bomb(decompressed_mb):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    header = b"text,label\n"
    body = [compressor.compress(header)]
    block = b"a," * (MB // 2)
    body += [compressor.compress(block) for _ in range(decompressed_mb)]
    return b"".join(body) + compressor.flush()


def test_gzip_bomb_refused_by_ratio_early_and_with_bounded_memory():
    bomb = gzip_bomb(100)  # ~100 KB that would inflate to 100 MB
    assert len(bomb) < MB
    tracemalloc.start()
    error = ingest_error(bomb, "bomb.csv.gz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert error.code == "gzip_ratio"
    assert "decompression bomb" in error.message
    assert peak < 8 * MB


def test_gzip_size_limit_stops_decompression_at_the_limit():
    bomb = gzip_bomb(50)
    limits = IngestLimits(max_decompressed_bytes=5 * MB, max_gzip_ratio=1e9)
    produced = 0
    with pytest.raises(IngestError) as caught:
        for piece in iter_gunzipped([bomb], limits):
            produced += len(piece)
    assert caught.value.code == "decompressed_too_large"
    assert "Split it into smaller files" in caught.value.message
    assert produced <= 5 * MB  # nothing past the limit was ever handed on
    assert ingest_error(bomb, "b.csv.gz", limits).code == "decompressed_too_large"


def test_truncated_and_corrupt_gzip():
    data = gzip.compress(b"text,label\n" + b"".join(b"row %d,pos\n" % i for i in range(5000)))
    assert ingest_error(data[: len(data) // 2], "t.csv.gz").code == "truncated_gzip"
    corrupt = data[:20] + bytes(b ^ 0xFF for b in data[20:60]) + data[60:]
    assert ingest_error(corrupt, "c.csv.gz").code in {"bad_gzip", "truncated_gzip"}


def test_multi_member_gzip_is_read_whole():
    data = gzip.compress(b"text,label\nfirst,pos\n") + gzip.compress(b"second,neg\n")
    assert [r.fields["text"] for r in read(data, "m.csv.gz")] == ["first", "second"]


@pytest.mark.parametrize("filename", ["bad.csv", "bad.jsonl"])
def test_invalid_utf8_on_one_line_rejects_only_that_row(filename):
    if filename.endswith(".csv"):
        data = b"text,label\nfine,pos\nbad \xff\xfe byte,neg\nalso fine,neg\n"
    else:
        data = b'{"text":"fine","label":"pos"}\n{"text":"bad \xff byte","label":"neg"}\n{"text":"ok","label":"neg"}\n'
    results = read(data, filename)
    assert [r.accepted for r in results] == [True, False, True]
    bad_line = 3 if filename.endswith(".csv") else 2
    assert results[1].rejection.code is RejectionCode.BAD_ENCODING
    assert results[1].rejection.message.startswith(f"bad encoding at line {bad_line}")


def test_json_lone_surrogate_escape_is_bad_encoding():
    results = read(b'{"text": "x \\ud800 y", "label": "pos"}\n', "s.jsonl")
    assert results[0].rejection.code is RejectionCode.BAD_ENCODING


def test_whole_file_not_utf8_is_one_file_error():
    latin1 = "text,label\n" + "".join(f"café numéro {i},pos\n" for i in range(50))
    assert ingest_error(latin1.encode("latin-1"), "l.csv").code == "not_utf8"
    assert ingest_error("text,label\nhi,pos\n".encode("utf-16"), "u.csv").code == "not_utf8"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_ten_megabyte_single_line_is_rejected_without_buffering_it(fmt):
    huge = "x" * (10 * MB)
    if fmt == "jsonl":
        lines = [
            '{"text": "before", "label": "pos"}',
            json.dumps({"text": huge, "label": "pos"}),
            '{"text": "after", "label": "neg"}',
        ]
    else:
        lines = ["text,label", "before,pos", f"{huge},pos", "after,neg"]
    data = "\n".join(lines).encode()
    tracemalloc.start()
    results = read(data, f"huge.{fmt}")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r.fields["text"] if r.accepted else r.rejection.code for r in results] == [
        "before",
        RejectionCode.LINE_TOO_LONG,
        "after",
    ]
    assert peak < 4 * MB  # the 10 MB line was never held (the input itself is not traced: preallocated)


def test_unterminated_quote_cannot_swallow_the_file():
    data = b'text,label\n"open quote,pos\n' + b"filler line,pos\n" * 200 + b"last,neg\n"
    results = read(data, "q.csv", IngestLimits(max_line_bytes=1000))
    assert results[0].rejection.code is RejectionCode.LINE_TOO_LONG
    assert results[0].line_number == 2
    assert results[-1].fields == {"text": "last", "label": "neg"}


def test_deeply_nested_json_is_too_deep():
    deep = '{"text": "hi", "label": "pos", "meta": ' + "[" * 50_000 + "]" * 50_000 + "}"
    moderately = '{"text": "hi", "label": "pos", "extra": ' + "[" * 40 + "]" * 40 + "}"
    flat_brackets = '{"text": "' + "[" * 100 + '", "label": "pos"}'
    results = read("\n".join([deep, moderately, flat_brackets]).encode(), "deep.jsonl")
    assert [r.rejection.code if r.rejection else None for r in results] == [
        RejectionCode.TOO_DEEP,
        RejectionCode.TOO_DEEP,
        None,
    ]


def test_parquet_renamed_csv_is_read_as_parquet(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": ["a parquet row"], "label": ["pos"]}), path)
    stream = iter_rows(io.BytesIO(path.read_bytes()), "really.csv", SCHEMA)
    assert [r.fields for r in stream] == [{"text": "a parquet row", "label": "pos"}]
    assert stream.format is FileFormat.PARQUET
    assert "content is PARQUET" in stream.notes[0]


def test_parquet_with_corrupt_footer_and_wrong_types(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": [1, 2]}), path)
    data = path.read_bytes()
    assert ingest_error(data[:-12] + b"\x00" * 8 + data[-4:], "x.parquet").code == "bad_parquet"
    assert ingest_error(data[: len(data) // 2], "x.parquet").code == "bad_parquet"
    results = read(data, "x.parquet")
    assert [r.rejection.code for r in results] == [RejectionCode.UNKNOWN_LABEL] * 2


def test_parquet_row_group_larger_than_limit_is_refused(tmp_path):
    path = tmp_path / "d.parquet"
    texts = [os.urandom(500).hex() for _ in range(2000)]
    pq.write_table(pa.table({"text": texts, "label": ["pos"] * 2000}), path, row_group_size=2000)
    error = ingest_error(path.read_bytes(), "d.parquet", IngestLimits(max_parquet_row_group_bytes=MB))
    assert error.code == "row_group_too_large" and "row_group_size" in error.message


def test_random_bytes_and_other_non_formats():
    assert ingest_error(os.urandom(4096), "random.csv").code == "unsupported_format"  # binary, named as such
    assert ingest_error(b"", "empty.csv").code == "empty_file"
    assert ingest_error(b'[{"text": "a"}]', "array.json").code == "json_array"
    assert ingest_error(gzip.compress(gzip.compress(b"text\n")), "twice.gz").code == "nested_compression"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", "text,label\n")
    assert ingest_error(archive.getvalue(), "a.zip").code == "unsupported_format"


def test_header_problems_are_file_level():
    assert ingest_error(b"body,label\nhi,pos\n", "h.csv").code == "missing_column"
    assert ingest_error(b"text,Text,label\na,b,pos\n", "h.csv").code == "duplicate_column"
    assert ingest_error(b"text,label\n", "h.csv").code == "no_rows"
    wide = (",".join(["text", "label"] + [f"c{i}" for i in range(300)]) + "\na,pos\n").encode()
    assert ingest_error(wide, "w.csv").code == "too_many_columns"


def test_upload_size_limit_checked_before_reading():
    limits = IngestLimits(max_upload_bytes=1000)
    error = ingest_error(b"text,label\n" + b"x,pos\n" * 500, "big.csv", limits)
    assert error.code == "file_too_large" and "1000 bytes" in error.message


def test_binary_mode_required():
    with pytest.raises(TypeError):
        iter_rows(io.StringIO("text,label\n"), "t.csv", SCHEMA)


def test_parquet_dictionary_bomb_rows_are_too_long_without_expansion(tmp_path):
    # 20,000 rows sharing one 200 KB value: a few hundred KB on disk, 4 GB if expanded per row.
    path = tmp_path / "d.parquet"
    huge = "y" * 200_000
    texts = pa.DictionaryArray.from_arrays(pa.array([0, 1] * 10_000, pa.int32()), pa.array([huge, "short"]))
    table = pa.table({"text": texts, "label": ["pos"] * 20_000})
    pq.write_table(table, path)
    assert path.stat().st_size < 2 * MB
    results = read(path.read_bytes(), "d.parquet")
    assert [r.rejection.code if r.rejection else None for r in results[:2]] == [RejectionCode.TOO_LONG, None]
    assert sum(r.accepted for r in results) == 10_000


def test_parquet_nested_column_refused(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": [["a", "b"]], "label": ["pos"]}), path)
    assert ingest_error(path.read_bytes(), "n.parquet").code == "wrong_column_type"
