"""Property tests: whatever bytes arrive, the engine answers with IngestError or per-row results."""

import gzip
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datanets.ingest import DatanetSchema, IngestError, IngestLimits, RejectionCode, encode_records, iter_rows

SCHEMA = DatanetSchema("text-classification", ("pos", "neg"), ("source",), max_field_length=300)
# Small limits so that mutations hit every limit branch quickly.
LIMITS = IngestLimits(max_line_bytes=2000, max_rows=50, max_json_depth=4, max_columns=8)
ROWS = [
    {"text": "first row, with a comma", "label": "pos", "source": "a"},
    {"text": 'second "quoted"\nrow', "label": "neg", "source": None},
    {"text": "third row ünïcödé", "label": "pos", "source": "c"},
]
FILENAMES = ["u.csv", "u.tsv", "u.jsonl", "u.parquet", "u.csv.gz", "u.json", "u.txt"]


def valid_files():
    files = {}
    for fmt in ("csv", "tsv", "jsonl", "parquet"):
        data = b"".join(encode_records(ROWS, ["text", "label", "source"], fmt, neutralise_formulas=False))
        files[f"u.{fmt}"] = data
        files[f"u.{fmt}.gz"] = gzip.compress(data, mtime=0)
    return files


VALID_FILES = valid_files()


def check_outcome(data: bytes, filename: str) -> None:
    try:
        stream = iter_rows(io.BytesIO(data), filename, SCHEMA, LIMITS)
        for result in stream:
            if result.accepted:
                assert result.fields is not None and len(result.content_hash) == 64
                assert set(result.fields) == set(SCHEMA.columns)
            else:
                assert isinstance(result.rejection.code, RejectionCode) and result.rejection.message
                assert result.fields is None
    except IngestError as error:
        assert error.code and error.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), filename=st.sampled_from(FILENAMES))
def test_random_bytes_never_crash(data, filename):
    check_outcome(data, filename)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.text(max_size=600), filename=st.sampled_from(FILENAMES))
def test_random_text_never_crashes(data, filename):
    check_outcome(data.encode("utf-8", errors="surrogatepass"), filename)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("repeat"), st.integers(0, 10**6), st.integers(1, 200)),
)


def mutate(data: bytes, ops) -> bytes:
    buffer = bytearray(data)
    for kind, position, arg in ops:
        if not buffer:
            break
        at = position % len(buffer)
        if kind == "flip":
            buffer[at] ^= arg
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "insert":
            buffer[at:at] = arg
        else:
            buffer[at:at] = buffer[at : at + arg] * 3
    return bytes(buffer)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(VALID_FILES)),
    ops=st.lists(mutation, min_size=1, max_size=4),
    filename=st.sampled_from(FILENAMES),
)
def test_mutated_valid_files_never_crash(name, ops, filename):
    check_outcome(mutate(VALID_FILES[name], ops), filename)


def test_unmutated_files_are_fully_accepted():
    for name, data in VALID_FILES.items():
        results = list(iter_rows(io.BytesIO(data), name, SCHEMA, LIMITS))
        assert [r.fields for r in results] == ROWS, name
