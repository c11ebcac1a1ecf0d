"""Verbatim spans (attribution/engine/verbatim.py): the suffix-array index finds exactly the maximal spans of an
answer that occur inside one training row, checked against a brute-force search, and refuses tampered files."""

import json

import numpy as np
import pytest

from attribution.engine.canonical import canonical_json
from attribution.engine.verbatim import (
    MANIFEST_NAME,
    SUFFIXES_NAME,
    TOKENS_NAME,
    SpanIndex,
    build_span_index,
    char_span,
)


def index_of(rows, directory, vocab_size=100, contributors=None):
    contributors = contributors or {}
    return build_span_index([(f"r{i}", contributors.get(i, f"c{i % 3}"), ids) for i, ids in enumerate(rows)],
                            directory, vocab_size=vocab_size, model_hash="model-hash")


def brute_force_spans(rows, answer, min_tokens):
    """Maximal spans by definition: the longest prefix of answer[i:] inside some row, kept when the span
    starting one position earlier does not contain it."""
    longest = []
    for i in range(len(answer)):
        best = 0
        for row in rows:
            for s in range(len(row)):
                n = 0
                while i + n < len(answer) and s + n < len(row) and row[s + n] == answer[i + n]:
                    n += 1
                best = max(best, n)
        longest.append(best)
    return [(i, i + n) for i, n in enumerate(longest) if n >= min_tokens and (i == 0 or n >= longest[i - 1])]


def test_a_copied_passage_is_found_with_its_row_and_offset(tmp_path):
    rows = [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], [30, 31, 32, 33, 34, 35, 36, 37, 38, 39],
            [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]]
    index = index_of(rows, tmp_path, contributors={1: "alice"})
    answer = [99, 98, 32, 33, 34, 35, 36, 37, 38, 39, 97]
    spans = index.find_spans(answer, min_tokens=8)
    assert [(s.start, s.end, s.length) for s in spans] == [(2, 10, 8)]
    (row,) = spans[0].rows
    assert (row.row_id, row.contributor_id, row.position, row.token_start) == ("r1", "alice", 1, 2)
    assert (spans[0].occurrences, spans[0].row_count) == (1, 1)


def test_spans_match_a_brute_force_search_on_random_rows(tmp_path):
    rng = np.random.default_rng(7)
    for trial in range(60):
        vocab = int(rng.integers(2, 6))  # a tiny vocabulary: many repeats, overlapping maximal spans
        rows = [rng.integers(0, vocab, size=int(rng.integers(0, 16))).tolist() for _ in range(int(rng.integers(1, 7)))]
        answer = rng.integers(0, vocab, size=int(rng.integers(0, 24))).tolist()
        min_tokens = int(rng.integers(1, 5))
        index = index_of(rows, tmp_path / str(trial), vocab_size=vocab)
        spans = index.find_spans(answer, min_tokens=min_tokens, max_rows=100)
        assert [(s.start, s.end) for s in spans] == brute_force_spans(rows, answer, min_tokens), (rows, answer)
        for span in spans:
            wanted = answer[span.start:span.end]
            holding = [(r, o) for r, row in enumerate(rows) for o in range(len(row) - len(wanted) + 1)
                       if row[o:o + len(wanted)] == wanted]
            assert span.occurrences == len(holding)
            assert [row.position for row in span.rows] == sorted({r for r, _ in holding})
            assert all(row.token_start == min(o for r, o in holding if r == row.position) for row in span.rows)


def test_no_span_is_shorter_than_min_tokens(tmp_path):
    rows = [[1, 2, 3, 4, 5, 6, 7, 60, 61], [8, 9, 10, 11, 12, 13, 14, 15, 16, 17]]
    index = index_of(rows, tmp_path)
    answer = [1, 2, 3, 4, 5, 6, 7, 90, 8, 9, 10, 11, 12, 13, 14, 15]  # a 7-token and an 8-token repeat
    assert [(s.start, s.end) for s in index.find_spans(answer, min_tokens=8)] == [(8, 16)]
    assert [(s.start, s.end) for s in index.find_spans(answer, min_tokens=7)] == [(0, 7), (8, 16)]
    assert index.find_spans(answer, min_tokens=9) == []


def test_spans_never_cross_from_one_row_into_the_next(tmp_path):
    rows = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]  # adjacent in the stream, with a separator between
    index = index_of(rows, tmp_path)
    spans = index.find_spans([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], min_tokens=3)
    assert [(s.start, s.end, s.rows[0].row_id) for s in spans] == [(0, 6, "r0"), (6, 12, "r1")]
    assert index.find_spans([4, 5, 6, 7, 8, 9], min_tokens=4) == []  # the join of two rows is no row's text


def test_rows_sharing_a_span_are_all_counted_and_the_first_listed(tmp_path):
    phrase = [50, 51, 52, 53, 54, 55, 56, 57, 58, 59]
    rows = [[i % 40, *phrase, 40 + i % 5] for i in range(15)]
    rows[3] = [*phrase, 1, *phrase]  # twice in one row: two occurrences, one row
    rows.append([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])  # does not hold it
    index = index_of(rows, tmp_path)
    (span,) = index.find_spans([70, *phrase, 71], min_tokens=8, max_rows=4)
    assert (span.start, span.end, span.occurrences, span.row_count) == (1, 11, 16, 15)
    assert [row.row_id for row in span.rows] == ["r0", "r1", "r2", "r3"]  # training order, capped
    assert [row.token_start for row in span.rows] == [1, 1, 1, 0]  # the first match in each row
    (uncapped,) = index.find_spans(phrase, min_tokens=8, max_rows=100)
    assert [row.row_id for row in uncapped.rows] == [f"r{i}" for i in range(15)]
    (unlisted,) = index.find_spans(phrase, min_tokens=8, max_rows=0)
    assert (unlisted.rows, unlisted.row_count) == ((), 15)


def test_empty_and_short_answers_have_no_spans(tmp_path):
    index = index_of([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], tmp_path)
    assert index.find_spans([], min_tokens=8) == []
    assert index.find_spans([1, 2, 3], min_tokens=8) == []
    empty = build_span_index([], tmp_path / "empty", vocab_size=10, model_hash="m")
    assert empty.find_spans([1, 2, 3, 4, 5, 6, 7, 8], min_tokens=2) == [] and empty.verify().ok
    blank_rows = index_of([[], []], tmp_path / "blank", vocab_size=10)
    assert blank_rows.find_spans([1, 2, 3], min_tokens=1) == []


def test_large_vocabularies_use_32_bit_tokens(tmp_path):
    rows = [[70_000 + i for i in range(12)], [65_535, 65_534, 1, 2, 3, 4, 5, 6, 7, 8]]
    index = index_of(rows, tmp_path, vocab_size=80_000)
    assert index.manifest["token_dtype"] == "uint32"
    assert [(s.start, s.end, s.rows[0].row_id) for s in index.find_spans([9, *range(70_002, 70_011)], min_tokens=8)] \
        == [(1, 10, "r0")]
    (span,) = index.find_spans([65_535, 65_534, 1, 2, 3, 4, 5, 6], min_tokens=8)  # the 16-bit separator value is a token here
    assert span.rows[0].row_id == "r1"


def test_bad_input_is_refused_with_a_message(tmp_path):
    index = index_of([[1, 2, 3, 4, 5, 6, 7, 8, 9]], tmp_path, vocab_size=50)
    with pytest.raises(ValueError, match="token id 50 is outside this index's vocabulary"):
        index.find_spans([1, 2, 50], min_tokens=2)
    with pytest.raises(ValueError, match="token id -1 is outside"):
        index.find_spans([-1, 2], min_tokens=2)
    with pytest.raises(ValueError, match="min_tokens must be a positive integer"):
        index.find_spans([1, 2], min_tokens=0)
    with pytest.raises(ValueError, match="max_rows must be"):
        index.find_spans([1, 2], max_rows=-1)
    with pytest.raises(ValueError, match="row r1: token id 65535 is outside the vocabulary"):
        build_span_index([("r0", "c", [1]), ("r1", "c", [2, 65_535])], tmp_path / "bad", vocab_size=100, model_hash="m")
    with pytest.raises(ValueError, match="row r0 appears twice"):
        build_span_index([("r0", "c", [1]), ("r0", "c", [2])], tmp_path / "dup", vocab_size=100, model_hash="m")


def test_the_span_hash_pins_the_content_and_rebuilds_reproduce_it(tmp_path):
    rows = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16, 17, 18]]
    first, again = index_of(rows, tmp_path / "a"), index_of(rows, tmp_path / "b")
    assert first.span_hash == again.span_hash and first.verify(expected_hash=again.span_hash).ok
    other = index_of([rows[0], [11, 12, 13, 14, 15, 16, 17, 19]], tmp_path / "c")
    assert other.span_hash != first.span_hash


def test_tampered_files_fail_verification(tmp_path):
    rows = [list(range(1, 30)), list(range(30, 60))]
    index = index_of(rows, tmp_path)
    expected = index.span_hash
    suffixes = tmp_path / SUFFIXES_NAME
    data = bytearray(suffixes.read_bytes())
    data[-1] ^= 0x01  # one bit of the last suffix: a plausible, wrong array
    suffixes.write_bytes(bytes(data))
    report = SpanIndex(tmp_path).verify(expected_hash=expected)
    assert not report.ok and report.problems == [f"{SUFFIXES_NAME}: sha256 mismatch"]

    manifest = json.loads((tmp_path / MANIFEST_NAME).read_bytes())
    manifest["row_contributor_ids"][0] = "mallory"  # re-credit a row, leaving the files alone
    (tmp_path / MANIFEST_NAME).write_bytes(canonical_json(manifest))
    assert "span hash differs from the expected hash" in SpanIndex(tmp_path).verify(expected_hash=expected).problems

    (tmp_path / TOKENS_NAME).write_bytes((tmp_path / TOKENS_NAME).read_bytes()[:-6])  # truncated
    with pytest.raises(ValueError, match=r"tokens.npy cannot be read as a uint16\[61\] array"):
        SpanIndex(tmp_path)

    fresh = index_of(rows, tmp_path / "fresh")
    (tmp_path / "fresh" / SUFFIXES_NAME).unlink()
    assert fresh.verify().problems == [f"{SUFFIXES_NAME}: missing"]


def test_char_span_maps_tokens_to_the_answers_characters_without_edge_spaces(tmp_path):
    index = index_of([[5, 6, 7]], tmp_path)
    text = "so: the quick fox"
    offsets = [(0, 2), (2, 3), (3, 7), (7, 13), (13, 17)]  # byte-level tokens carry their leading space
    (span,) = index.find_spans([9, 9, 5, 6, 7], min_tokens=3)
    assert char_span(offsets, text, span) == (4, 17) and text[4:17] == "the quick fox"
