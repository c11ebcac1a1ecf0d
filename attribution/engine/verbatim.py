"""Verbatim spans: where a generated answer repeats a training row word for word.

Gradient attribution ranks influence; it cannot say "these 40 tokens are row r17, copied". This module
answers that exactly, as infini-gram and OLMoTrace do: a suffix array over the model version's training
token stream (the rows encoded exactly as training encoded them), searched for every maximal span of
the answer that occurs in some row.

Layout of a span index directory (``build_span_index`` writes it, ``SpanIndex`` reads it):

- ``tokens.npy``: the stream ``row₀ SEP row₁ SEP ...`` (uint16, or uint32 for vocabularies of 65,535
  tokens or more). ``SEP`` is the dtype's largest value, which no token id reaches, so no match can
  cross from one row into the next.
- ``suffixes.npy``: the suffix array of the stream (libdivsufsort through ``pydivsufsort``), without
  the suffixes that start at a separator (uint32, or int64 past 4 G tokens).
- ``row_starts.npy``: where each row starts in the stream, so a match maps to (row, token offset).
- ``token_bounds.npy``: for each token id t, the first suffix-array slot whose suffix starts with a token
  ≥ t (vocab_size + 1 entries), so a search starts inside its first token's block, ~log2(vocab) steps in.
- ``verbatim.json``: the manifest: sizes, dtypes, row ids and contributor ids in stream order, each
  file's sha256. The span hash is the sha256 of its canonical JSON, so it pins every byte;
  ``verify()`` recomputes all of it. The arrays are memory-mapped, never read whole.

Query (``SpanIndex.find_spans``): for every answer position i, the longest prefix of answer[i:] found
in the stream, ℓ(i). In a sorted suffix array the suffix sharing the longest prefix with a pattern is
next to the pattern's insertion point, so ℓ(i) costs one binary search (run for all i at once with
numpy). Span [i, i+ℓ(i)) is maximal when the span starting at i-1 does not contain it (ℓ(i) ≥ ℓ(i-1));
spans shorter than ``min_tokens`` are ordinary phrasing and are dropped. Each kept span gets the exact
suffix-array range of its tokens: the occurrence count, the number of distinct rows, and the first
``max_rows`` rows (in stream order, which is training order) with the offset of the match in the row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .canonical import canonical_json, canonical_sha256, file_sha256

FORMAT_VERSION = 1
MANIFEST_NAME = "verbatim.json"
TOKENS_NAME = "tokens.npy"
SUFFIXES_NAME = "suffixes.npy"
ROW_STARTS_NAME = "row_starts.npy"
TOKEN_BOUNDS_NAME = "token_bounds.npy"
FILE_NAMES = (TOKENS_NAME, SUFFIXES_NAME, ROW_STARTS_NAME, TOKEN_BOUNDS_NAME)
DEFAULT_MIN_TOKENS = 8  # shorter repeats are common phrasing ("the end of the"), not copied rows
DEFAULT_MAX_ROWS = 10  # rows named per span; the total is always reported
# Spans name rows and contributors; they pay nothing of their own. A receipt records this figure so a
# later policy that carves a royalty for copied rows (basis points of the contributors' pool) is visible
# in the receipts it applies to. Settlement reads shares only.
SPAN_ROYALTY_BPS = 0
_BATCH_ELEMENTS = 1 << 18  # answer positions × pattern width compared per numpy step
_ABOVE_EVERY_TOKEN = np.int64(1) << 40  # pads a pattern so it sorts after every suffix it prefixes


@dataclass(frozen=True)
class SpanRow:
    """One training row holding a span: its stream position (training order), ids, and where the match starts."""

    position: int
    row_id: str
    contributor_id: str
    token_start: int


@dataclass(frozen=True)
class VerbatimSpan:
    """answer[start:end] (token positions, end exclusive) occurs verbatim in training rows."""

    start: int
    end: int
    occurrences: int  # times the span occurs in the stream, all rows together
    row_count: int  # distinct rows holding it
    rows: tuple[SpanRow, ...]  # the first `max_rows` of them, in training order

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class SpanVerification:
    ok: bool
    span_hash: str
    problems: list[str] = field(default_factory=list)


def _token_dtype(vocab_size: int) -> np.dtype:
    if vocab_size < np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if vocab_size < np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    raise ValueError(f"vocab_size {vocab_size} is too large for a uint32 token stream")


def build_span_index(rows: Iterable[tuple[str, str, Sequence[int]]], directory: Path | str, *, vocab_size: int,
                     model_hash: str) -> SpanIndex:
    """Write a span index of ``rows`` ((row id, contributor id, token ids), in training order) to ``directory``.

    Token ids must lie in [0, vocab_size): the separator is the token dtype's largest value and must never
    be a real token. Raises ValueError naming the row when one does not."""
    from pydivsufsort import divsufsort

    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    dtype = _token_dtype(vocab_size)
    separator = int(np.iinfo(dtype).max)
    row_ids: list[str] = []
    contributor_ids: list[str] = []
    chunks: list[np.ndarray] = []
    seen: set[str] = set()
    for row_id, contributor_id, token_ids in rows:
        row_id, contributor_id = str(row_id), str(contributor_id)
        if row_id in seen:
            raise ValueError(f"row {row_id} appears twice; each training row is indexed once")
        seen.add(row_id)
        ids = np.asarray(list(token_ids), dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"row {row_id}: token ids must be a flat sequence of integers")
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            bad = int(ids[(ids < 0) | (ids >= vocab_size)][0])
            raise ValueError(f"row {row_id}: token id {bad} is outside the vocabulary (0 to {vocab_size - 1})")
        row_ids.append(row_id)
        contributor_ids.append(contributor_id)
        chunks.append(ids.astype(dtype))
        chunks.append(np.array([separator], dtype=dtype))
    stream = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
    lengths = np.array([len(c) for c in chunks[0::2]], dtype=np.int64)
    row_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64) if len(lengths) else lengths
    if stream.size:
        suffixes = np.asarray(divsufsort(stream), dtype=np.int64)
        suffixes = suffixes[stream[suffixes] != separator]  # a subsequence of a sorted array stays sorted
    else:
        suffixes = np.empty(0, dtype=np.int64)
    suffixes = suffixes.astype(np.uint32 if stream.size < np.iinfo(np.uint32).max else np.int64)
    token_bounds = np.searchsorted(stream[suffixes], np.arange(vocab_size + 1)).astype(np.int64)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in ((TOKENS_NAME, stream), (SUFFIXES_NAME, suffixes), (ROW_STARTS_NAME, row_starts),
                        (TOKEN_BOUNDS_NAME, token_bounds)):
        np.save(directory / name, array, allow_pickle=False)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": "verbatim-suffix-array",
        "model_hash": model_hash,
        "vocab_size": vocab_size,
        "token_dtype": dtype.name,
        "separator": separator,
        "suffix_dtype": suffixes.dtype.name,
        "num_rows": len(row_ids),
        "max_row_tokens": int(lengths.max()) if len(lengths) else 0,  # no match is longer: bounds the search width
        "num_tokens": int(stream.size),  # separators included
        "num_suffixes": int(suffixes.size),
        "row_ids": row_ids,
        "row_contributor_ids": contributor_ids,
        "files": [{"file": name, "sha256": file_sha256(directory / name)} for name in FILE_NAMES],
    }
    (directory / MANIFEST_NAME).write_bytes(canonical_json(manifest))
    return SpanIndex(directory)


def _load(path: Path, dtype: str, size: int) -> np.ndarray:
    if size == 0:
        return np.empty(0, dtype=dtype)  # numpy cannot memory-map zero bytes
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:  # a truncated or foreign file: numpy's words do not name it
        raise ValueError(f"{path.name} cannot be read as a {dtype}[{size}] array ({exc})") from exc
    if array.dtype != np.dtype(dtype) or array.shape != (size,):
        raise ValueError(f"{path.name} holds {array.dtype}{list(array.shape)}, the manifest says {dtype}[{size}]")
    return np.asarray(array)  # a plain ndarray over the same mapping: np.memmap's indexing costs ~10 µs a call


class SpanIndex:
    """A span index directory, opened read-only with its arrays memory-mapped. Opening checks shapes
    (a truncated file fails at once, with ValueError); ``verify`` checks every byte."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.manifest = json.loads((self.directory / MANIFEST_NAME).read_bytes())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"span index format {self.manifest.get('format_version')!r} is not {FORMAT_VERSION}")
        self.span_hash = canonical_sha256(self.manifest)
        m = self.manifest
        self.vocab_size = int(m["vocab_size"])
        self.separator = int(m["separator"])
        self.max_row_tokens = int(m["max_row_tokens"])
        self.row_ids: list[str] = list(m["row_ids"])
        self.row_contributor_ids: list[str] = list(m["row_contributor_ids"])
        if len(self.row_ids) != m["num_rows"] or len(self.row_contributor_ids) != m["num_rows"]:
            raise ValueError("the manifest's row lists do not match its row count")
        self.tokens = _load(self.directory / TOKENS_NAME, m["token_dtype"], m["num_tokens"])
        self.suffixes = _load(self.directory / SUFFIXES_NAME, m["suffix_dtype"], m["num_suffixes"])
        self.row_starts = _load(self.directory / ROW_STARTS_NAME, "int64", m["num_rows"])
        self.token_bounds = _load(self.directory / TOKEN_BOUNDS_NAME, "int64", self.vocab_size + 1)

    @property
    def num_rows(self) -> int:
        return len(self.row_ids)

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(entry["file"] for entry in self.manifest["files"])

    def verify(self, expected_hash: str | None = None) -> SpanVerification:
        """Recompute every file's sha256 and the span hash; report each mismatch."""
        problems = []
        for entry in self.manifest["files"]:
            path = self.directory / entry["file"]
            if not path.exists():
                problems.append(f"{entry['file']}: missing")
            elif file_sha256(path) != entry["sha256"]:
                problems.append(f"{entry['file']}: sha256 mismatch")
        try:
            current = canonical_sha256(json.loads((self.directory / MANIFEST_NAME).read_bytes()))
        except (OSError, ValueError):
            current = ""
        if current != self.span_hash:
            problems.append(f"{MANIFEST_NAME} changed since the span index was opened")
        if expected_hash is not None and current != expected_hash:
            problems.append("span hash differs from the expected hash")
        return SpanVerification(not problems, current, problems)

    # --- search

    def _windows(self, starts: np.ndarray, width: int) -> np.ndarray:
        """tokens[start : start+width] for each start, as int64; reads past the end repeat the final
        separator (the stream always ends with one, so every comparison is decided before that)."""
        positions = starts.astype(np.int64)[:, None] + np.arange(width, dtype=np.int64)
        np.minimum(positions, self.tokens.size - 1, out=positions)
        return self.tokens[positions].astype(np.int64)

    def _lower_bound(self, patterns: np.ndarray) -> np.ndarray:
        """For each row of ``patterns`` ([b, w] int64), the first suffix-array slot whose suffix is not
        smaller than it. Padding -1 finds the first suffix the real part prefixes; padding above every
        token finds the first suffix after them."""
        count = patterns.shape[0]
        lo = self.token_bounds[patterns[:, 0]]  # every pattern starts with a real token
        hi = self.token_bounds[patterns[:, 0] + 1]
        rows = np.arange(count)
        while True:
            active = np.flatnonzero(lo < hi)
            if active.size == 0:
                return lo
            mid = (lo[active] + hi[active]) // 2
            window = self._windows(self.suffixes[mid], patterns.shape[1])
            wanted = patterns[active]
            differs = window != wanted
            first = differs.argmax(axis=1)
            at = rows[: active.size]
            less = differs[at, first] & (window[at, first] < wanted[at, first])
            lo[active] = np.where(less, mid + 1, lo[active])
            hi[active] = np.where(less, hi[active], mid)

    def _common_prefix(self, slots: np.ndarray, patterns: np.ndarray) -> np.ndarray:
        """Tokens shared by each pattern and the suffix in its slot (0 for a slot outside the array)."""
        inside = (slots >= 0) & (slots < self.suffixes.size)
        out = np.zeros(slots.size, dtype=np.int64)
        if inside.any():
            window = self._windows(self.suffixes[slots[inside]], patterns.shape[1])
            differs = window != patterns[inside]
            out[inside] = np.where(differs.any(axis=1), differs.argmax(axis=1), patterns.shape[1])
        return out

    def _longest_matches(self, answer: np.ndarray, positions: int) -> np.ndarray:
        """ℓ(i) for i < ``positions``: the longest prefix of answer[i:] found anywhere in the stream. No
        match outruns the longest row, so patterns stop one token past it: long answers cost linear time."""
        width = min(answer.size, self.max_row_tokens + 1)
        longest = np.zeros(positions, dtype=np.int64)
        padded = np.concatenate([answer, np.full(width, -1, dtype=np.int64)])
        step = max(1, _BATCH_ELEMENTS // width)
        for first in range(0, positions, step):
            starts = np.arange(first, min(first + step, positions))
            patterns = padded[starts[:, None] + np.arange(width)]
            slot = self._lower_bound(patterns)
            longest[starts] = np.maximum(self._common_prefix(slot - 1, patterns), self._common_prefix(slot, patterns))
        return longest

    def _rows_holding(self, lo: int, hi: int, max_rows: int) -> tuple[int, tuple[SpanRow, ...]]:
        positions = np.asarray(self.suffixes[lo:hi], dtype=np.int64)
        rows = np.searchsorted(self.row_starts, positions, side="right") - 1
        offsets = positions - self.row_starts[rows]
        order = np.lexsort((offsets, rows))
        rows, offsets = rows[order], offsets[order]
        firsts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
        listed = tuple(
            SpanRow(int(rows[i]), self.row_ids[int(rows[i])], self.row_contributor_ids[int(rows[i])], int(offsets[i]))
            for i in firsts[:max_rows]
        )
        return int(firsts.size), listed

    def find_spans(self, token_ids: Sequence[int], *, min_tokens: int = DEFAULT_MIN_TOKENS,
                   max_rows: int = DEFAULT_MAX_ROWS) -> list[VerbatimSpan]:
        """Every maximal span of ``token_ids`` at least ``min_tokens`` long that occurs verbatim inside one
        training row, in answer order. Maximal spans may overlap; none is contained in another."""
        if not isinstance(min_tokens, int) or min_tokens < 1:
            raise ValueError(f"min_tokens must be a positive integer, got {min_tokens!r}")
        if not isinstance(max_rows, int) or max_rows < 0:
            raise ValueError(f"max_rows must be a non-negative integer, got {max_rows!r}")
        answer = np.asarray(list(token_ids), dtype=np.int64)
        if answer.ndim != 1:
            raise ValueError("token_ids must be a flat sequence of integers")
        if answer.size and (answer.min() < 0 or answer.max() >= self.vocab_size):
            bad = int(answer[(answer < 0) | (answer >= self.vocab_size)][0])
            raise ValueError(f"token id {bad} is outside this index's vocabulary (0 to {self.vocab_size - 1}); "
                             "encode the answer with the model version's own tokenizer")
        if answer.size < min_tokens or self.suffixes.size == 0:
            return []
        longest = self._longest_matches(answer, answer.size - min_tokens + 1)
        previous = np.concatenate([[0], longest[:-1]])
        starts = np.flatnonzero((longest >= min_tokens) & (longest >= previous))
        if starts.size == 0:
            return []
        lengths = longest[starts]
        width = int(lengths.max()) + 1  # every pattern ends in at least one pad
        body = answer[starts[:, None] + np.minimum(np.arange(width), lengths[:, None] - 1)]
        beyond = np.arange(width) >= lengths[:, None]
        lows = self._lower_bound(np.where(beyond, -1, body))
        highs = self._lower_bound(np.where(beyond, _ABOVE_EVERY_TOKEN, body))
        spans = []
        for start, length, lo, hi in zip(starts.tolist(), lengths.tolist(), lows.tolist(), highs.tolist()):
            row_count, rows = self._rows_holding(lo, hi, max_rows)
            spans.append(VerbatimSpan(start, start + length, hi - lo, row_count, rows))
        return spans


def char_span(offsets: Sequence[tuple[int, int]], text: str, span: VerbatimSpan) -> tuple[int, int]:
    """The characters of ``text`` a token span covers, from a fast tokenizer's offset mapping, with the
    whitespace a byte-level token carries at its edges left out."""
    start, end = int(offsets[span.start][0]), int(offsets[span.end - 1][1])
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
