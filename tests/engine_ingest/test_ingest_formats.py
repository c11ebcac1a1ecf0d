"""Every upload format (plain and gzipped) round-trips good rows and reports bad rows precisely."""

import gzip
import io

import pytest

from datanets.ingest import (
    DatanetSchema,
    ExportFormat,
    IngestLimits,
    RejectionCode,
    SchemaError,
    TaskType,
    column_statistics,
    encode_records,
    iter_json_rows,
    iter_rows,
    sniff_format,
)
from datanets.ingest.sniff import FileFormat

SCHEMA = DatanetSchema(
    TaskType.TEXT_CLASSIFICATION, ("positive", "negative"), ("source",), max_field_length=200
)
COLUMNS = ["text", "label", "source"]
GOOD_ROWS = [
    {"text": "I loved every minute of it.", "label": "positive", "source": "imdb"},
    {"text": 'Multi-line,\nwith a "quoted" comma', "label": "negative", "source": None},
    {"text": "Café crème — naïve façade 🙂", "label": "positive", "source": "web"},
    {"text": "=1+2 looks like a formula", "label": "negative", "source": "-x"},
]


def encode(rows, fmt, gzipped=False, columns=COLUMNS):
    data = b"".join(encode_records(rows, columns, fmt, neutralise_formulas=False))
    return gzip.compress(data) if gzipped else data


def read(data, filename, schema=SCHEMA, limits=None):
    stream = iter_rows(io.BytesIO(data), filename, schema, limits)
    return stream, list(stream)


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_good_rows_round_trip(fmt, gzipped):
    filename = f"upload.{fmt.value}" + (".gz" if gzipped else "")
    stream, results = read(encode(GOOD_ROWS, fmt, gzipped), filename)
    assert stream.format is FileFormat(fmt.value)
    assert stream.gzipped is gzipped
    assert [r.fields for r in results] == GOOD_ROWS
    assert [r.row_number for r in results] == [1, 2, 3, 4]
    assert all(r.accepted and len(r.content_hash) == 64 for r in results)
    assert stream.accepted_count == 4 and stream.rejected_count == 0
    assert stream.progress == 1.0 and stream.notes == []


MIXED_ROWS = [
    {"text": "fine row one", "label": "positive"},  # line 2
    {"text": "", "label": "positive"},  # line 3: empty
    {"text": "unknown label row", "label": "maybe"},  # line 4
    {"text": "two\nlines", "label": "negative"},  # lines 5-6
    {"text": "x" * 201, "label": "negative"},  # line 7: too long
    {"text": "fine row two", "label": "negative"},  # line 8
]


@pytest.mark.parametrize("fmt", [ExportFormat.CSV, ExportFormat.TSV])
def test_mixed_rows_delimited_report_reason_and_physical_line(fmt):
    _, results = read(encode(MIXED_ROWS, fmt), f"mixed.{fmt.value}")
    outcome = [(r.row_number, r.line_number, r.rejection.code if r.rejection else None) for r in results]
    assert outcome == [
        (1, 2, None),
        (2, 3, RejectionCode.EMPTY_TEXT),
        (3, 4, RejectionCode.UNKNOWN_LABEL),
        (4, 5, None),
        (5, 7, RejectionCode.TOO_LONG),
        (6, 8, None),
    ]
    assert results[2].rejection.message.startswith(
        "Line 4: the label 'maybe' is not one of: positive, negative"
    )
    assert [r.fields["text"] for r in results if r.accepted] == ["fine row one", "two\nlines", "fine row two"]


def test_mixed_rows_jsonl_every_bad_line_has_reason():
    lines = [
        b'{"text": "good one", "label": "positive"}',
        b'{"text": "missing label"}',
        b"{not json",
        b"",
        b'["not", "an", "object"]',
        b'{"text": 42, "label": "positive"}',
        b'{"text": "int label", "label": 1}',
        b'{"text": "   ", "label": "negative"}',
        b'{"text": "good two", "label": "negative", "source": 7}',
    ]
    schema = DatanetSchema("text-classification", ("0", "1", "positive", "negative"), ("source",))
    _, results = read(b"\n".join(lines), "rows.jsonl", schema)
    outcome = [(r.line_number, r.rejection.code if r.rejection else None) for r in results]
    assert outcome == [
        (1, None),
        (2, RejectionCode.MISSING_COLUMN),
        (3, RejectionCode.BAD_JSON),
        (5, RejectionCode.WRONG_TYPE),
        (6, RejectionCode.WRONG_TYPE),
        (7, None),
        (8, RejectionCode.EMPTY_TEXT),
        (9, None),
    ]
    assert results[5].fields["label"] == "1"
    assert results[7].fields["source"] == "7"
    assert results[2].rejection.message.startswith("Line 3: not valid JSON")


def test_csv_header_case_bom_crlf_and_unknown_columns():
    data = '\ufeffText,LABEL,row_note\r\nhello,positive,x\r\n\r\n"a\r\nb",negative,y\r\n'.encode()
    stream, results = read(data, "in.csv")
    assert [(r.line_number, r.fields) for r in results] == [
        (2, {"text": "hello", "label": "positive", "source": None}),
        (4, {"text": "a\nb", "label": "negative", "source": None}),
    ]
    assert stream.notes == ["These columns are not part of this Datanet and were ignored: row_note."]


def test_extra_fields_and_short_rows_in_csv():
    data = b"text,label\nok,positive\ntoo,many,fields\nonly-text\n"
    _, results = read(data, "in.csv")
    assert [r.rejection.code if r.rejection else None for r in results] == [
        None,
        RejectionCode.BAD_CSV,
        RejectionCode.MISSING_COLUMN,
    ]


def test_instruction_schema_optional_context():
    schema = DatanetSchema("instruction", max_field_length=1000)
    rows = [
        {"prompt": "Say hi", "response": "Hi!", "context": None},
        {"prompt": "Sum", "response": "  def f():\n    return 1  ", "context": "python"},
        {"prompt": "No response", "response": "", "context": None},
    ]
    _, results = read(encode(rows, "jsonl", columns=["prompt", "response", "context"]), "i.jsonl", schema)
    assert results[0].fields == {"prompt": "Say hi", "response": "Hi!", "context": ""}
    assert results[1].fields["response"] == "def f():\n    return 1"  # inner whitespace kept
    assert results[2].rejection.code is RejectionCode.EMPTY_TEXT


def test_text_schema_single_column_csv_uses_extension_for_tsv():
    schema = DatanetSchema("text")
    _, results = read(b"text\nfirst line\nsecond line\n", "corpus.tsv", schema)
    assert [r.fields for r in results] == [{"text": "first line"}, {"text": "second line"}]


def test_extension_lies_content_decides():
    stream, results = read(encode(GOOD_ROWS, "jsonl"), "actually.csv")
    assert stream.format is FileFormat.JSONL and len(results) == 4
    assert "content is JSONL" in stream.notes[0]
    stream, _ = read(encode(GOOD_ROWS, "csv", gzipped=True), "no_gz_suffix.csv")
    assert stream.gzipped and "gzip-compressed" in stream.notes[0]


def test_sniff_format_by_content():
    assert sniff_format("x.parquet", b"text,label\n").format is FileFormat.CSV
    assert sniff_format("x.csv", b"text\tlabel\n").format is FileFormat.TSV
    assert sniff_format("x", b'  {"text": "a"}\n').format is FileFormat.JSONL
    assert sniff_format("x.csv", b"PAR1\x00\x00").format is FileFormat.PARQUET
    result = sniff_format("x.jsonl", gzip.compress(b'{"a": 1}\n'))
    assert (result.format, result.gzipped) == (FileFormat.JSONL, True)


def test_too_many_rows_stops_with_one_rejection():
    schema = DatanetSchema("text", max_rows_per_contribution=3)
    data = b"text\n" + b"".join(b"row %d\n" % i for i in range(10))
    _, results = read(data, "t.csv", schema)
    assert [r.accepted for r in results] == [True, True, True, False]
    assert results[-1].rejection.code is RejectionCode.TOO_MANY_ROWS
    _, results = read(data, "t.csv", DatanetSchema("text"), IngestLimits(max_rows=2))
    assert len(results) == 3 and results[-1].rejection.code is RejectionCode.TOO_MANY_ROWS


def test_progress_reports_bytes_read_while_streaming():
    data = encode([{"text": f"row number {i} " * 5, "label": "positive"} for i in range(20000)], "jsonl")
    stream = iter_rows(io.BytesIO(data), "big.jsonl", SCHEMA)
    assert stream.total_bytes == len(data)
    next(stream)
    assert 0 < stream.progress < 1
    assert sum(1 for _ in stream) == 19999
    assert stream.progress == 1.0


def test_json_rows_api():
    stream = iter_json_rows([{"text": "hi", "label": "positive"}, "nope", {"label": "negative"}], SCHEMA)
    results = list(stream)
    assert results[0].fields == {"text": "hi", "label": "positive", "source": None}
    assert [r.rejection.code for r in results[1:]] == [RejectionCode.WRONG_TYPE, RejectionCode.MISSING_COLUMN]
    assert results[2].rejection.message.startswith("Row 3: ")


def test_schema_json_round_trip_and_validation():
    schema = DatanetSchema("text-classification", ["a", "b"], ["lang"], 500, 10)
    assert DatanetSchema.from_json(schema.to_json()) == schema
    assert schema.content_columns == ("text",)
    assert schema.resolve_column(" LANG ") == "lang"
    for bad in (
        dict(task_type="text-classification", label_set=["only"]),
        dict(task_type="text", label_set=["a", "b"]),
        dict(task_type="poetry"),
        dict(task_type="text", metadata_columns=["Text"]),
        dict(task_type="text", metadata_columns=["row_id"]),
        dict(task_type="text", max_field_length=10**6),
    ):
        with pytest.raises(SchemaError):
            DatanetSchema(**bad)


def test_column_statistics():
    _, results = read(encode(GOOD_ROWS + [{"text": "more", "label": "positive"}], "csv"), "s.csv")
    stats = column_statistics((r.fields for r in results), SCHEMA)
    assert stats["label"].top_values == (("positive", 3), ("negative", 2))
    assert (stats["text"].count, stats["text"].min_length, stats["text"].max_length) == (5, 4, 33)
    assert stats["source"].empty == 2 and stats["source"].mean_length == 3.0  # imdb, web, -x
