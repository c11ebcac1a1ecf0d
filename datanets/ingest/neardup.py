"""Near-duplicate detection: MinHash signatures + LSH banding, vectorised with numpy.

Shingles are *character k-grams* (``shingle_size``, 5 by default) of ``normalise_text(text,
casefold=True)``: they need no tokeniser (so they work for languages written without spaces), and one
edited word only disturbs the few shingles that overlap it. A text shorter than the shingle size is one
shingle.

Why not datasketch's own objects: its MinHash hashes shingles one by one in Python, and its in-memory
LSH keeps a Python set per bucket (hundreds of MB for 100k rows). Here the whole pipeline (shingle
hashing, the permutation family, banding, bucket look-ups and similarity estimates) is numpy over many
texts at once, and the index is a few flat arrays: ~65 MB for 100k rows at num_perm=128, serialised
without pickle. The banding parameters are chosen exactly as datasketch's ``MinHashLSH`` chooses them
(minimising the equally weighted false-positive and false-negative areas), so thresholds mean the same
thing.

The permutation family is multiply-add-shift hashing of 64-bit shingle hashes: ``(a*x + b) >> 32``
with odd random ``a``, a standard universal family for MinHash (measured over twelve seeds on one-word
edits: no bias against the true Jaccard, recall as the banding predicts).
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .normalise import normalise_text
from .rows import RowId

FORMAT_VERSION = 1
_U64 = np.uint64
# Shingles per block of the (num_perm x shingles) hash matrix: bounds the temporary to 8,192 x 128 x 8
# bytes = 8 MB whatever the texts' length (measured on the 2-core dev machine: the fastest of 2k-16k,
# ~25 % faster per row than 16k, where the temporaries no longer stay in cache).
_WINDOW_BLOCK = 8192
# Texts per signature batch when indexing or querying many rows.
_TEXT_BATCH = 2048
# Recent band keys are kept in a second sorted run and merged into the main one when they grow past
# this many (or an eighth of the main run), so inserts never re-sort the whole index.
_RECENT_MERGE_AT = 65536
_EMPTY = np.iinfo(np.uint32).max
_SHINGLE_BASE = _U64(0x100000001B3)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial hashes over all 64 bits (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


@functools.lru_cache(maxsize=64)
def optimal_lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false-positive + false-negative probability areas."""
    s = np.linspace(0.0, 1.0, 1001)
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands
            below, above = s <= threshold, s >= threshold
            error = np.trapezoid(p[below], s[below]) + np.trapezoid(1.0 - p[above], s[above])
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def shingle_set(text: str, shingle_size: int = 5) -> set[str]:
    """The character shingles of a text's comparison form (for exact Jaccard, e.g. in a curator view)."""
    norm = normalise_text(text, casefold=True)
    if len(norm) <= shingle_size:
        return {norm} if norm else set()
    return {norm[i : i + shingle_size] for i in range(len(norm) - shingle_size + 1)}


def shingle_jaccard(text_a: str, text_b: str, shingle_size: int = 5) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (what MinHash estimates)."""
    a, b = shingle_set(text_a, shingle_size), shingle_set(text_b, shingle_size)
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True, slots=True)
class NearDupMatch:
    """The most similar indexed row and MinHash's estimate of its Jaccard similarity."""

    row_id: RowId
    estimated_jaccard: float


class NearDupIndex:
    """MinHash-LSH index of row texts, built once per Datanet and updated as rows are accepted.

    ``query`` returns the indexed row with the highest estimated Jaccard similarity among the LSH
    candidates, if that estimate reaches ``threshold``. Rows are never removed (curators delete
    rarely; rebuild with :meth:`build` then). Persist with :meth:`save`/:meth:`load` or
    :meth:`to_bytes`/:meth:`from_bytes`.
    """

    def __init__(
        self, threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 5, seed: int = 1
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if num_perm < 2 or shingle_size < 1:
            raise ValueError("num_perm must be at least 2 and shingle_size at least 1")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        self.bands, self.rows_per_band = optimal_lsh_params(threshold, num_perm)
        rng = np.random.default_rng(seed)
        self._perm_a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | _U64(1)
        self._perm_b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
        # Random odd multipliers per (band, position): a band's key is a multilinear hash of its values,
        # distinct per band, computed for all bands in one vectorised product.
        self._band_coefficients = rng.integers(
            0, 2**64, size=(self.bands, self.rows_per_band), dtype=np.uint64, endpoint=False
        ) | _U64(1)
        self._ids: list[RowId] = []
        self._positions: dict[RowId, int] = {}
        # Signature rows [0, len(self)) are valid; capacity doubles so single inserts are amortised O(1).
        self._signature_store = np.empty((0, num_perm), dtype=np.uint32)
        # Band keys live in two sorted runs searched with searchsorted: the main run and a small run of
        # recent keys that new rows are merged into (an O(recent) insertion, no re-sort), itself merged
        # into the main run when it grows. Lookups stay logarithmic and fully vectorised.
        self._sorted_keys = np.empty(0, dtype=np.uint64)
        self._sorted_owners = np.empty(0, dtype=np.int64)
        self._recent_keys = np.empty(0, dtype=np.uint64)
        self._recent_owners = np.empty(0, dtype=np.int64)

    @property
    def _signatures(self) -> np.ndarray:
        return self._signature_store[: len(self._ids)]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, row_id: object) -> bool:
        return row_id in self._positions

    @property
    def row_ids(self) -> tuple[RowId, ...]:
        """Every indexed row id, in insertion order."""
        return tuple(self._ids)

    # --- signatures -------------------------------------------------------------------------------

    def _shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(64-bit hash of every shingle of every non-empty text, shingle -> text position, the texts'
        positions that have shingles), all texts at once: one UTF-32 buffer and k strided passes."""
        k = self.shingle_size
        normalised = [normalise_text(t, casefold=True) for t in texts]
        present = np.fromiter((i for i, t in enumerate(normalised) if t), dtype=np.int64)
        if not present.size:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64), present
        padded = [normalised[i].ljust(k, "\0") for i in present.tolist()]
        code_points = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
        windows = lengths - k + 1
        text_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        window_starts = np.concatenate(([0], np.cumsum(windows)[:-1]))
        owner = np.repeat(np.arange(len(padded)), windows)
        starts = np.arange(int(windows.sum())) - window_starts[owner] + text_starts[owner]
        shingle_hash = np.zeros(starts.shape, dtype=np.uint64)
        for offset in range(k):
            shingle_hash = shingle_hash * _SHINGLE_BASE + code_points[starts + offset]
        return _mix64(shingle_hash), owner, present

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """MinHash signatures (len(texts) x num_perm, uint32); an empty text gets all-max values.

        Value j of a text's signature is ``min over its shingles x of ((a_j * x + b_j) mod 2**64) >> 32``.
        All texts are processed together: the shingle hashes of consecutive texts form one array, the
        permutations are one (num_perm x shingles) product per fixed-size block of it, and the minima
        per text are one ``minimum.reduceat`` over the texts' segments in the block (a text that spans
        two blocks takes the smaller of its two partial minima). The shift is applied once, after the
        minimum (``>> 32`` is monotonic, so the minimum's high half is the minimum of the high halves),
        on a (num_perm x texts) array instead of the whole product.
        """
        signatures = np.full((len(texts), self.num_perm), _EMPTY, dtype=np.uint32)
        shingle_hash, owner, present = self._shingle_hashes(texts)
        if not present.size:
            return signatures
        minima = np.full((self.num_perm, present.size), np.iinfo(np.uint64).max, dtype=np.uint64)
        perm_a, perm_b = self._perm_a[:, None], self._perm_b[:, None]
        for lo in range(0, len(shingle_hash), _WINDOW_BLOCK):
            block_owner = owner[lo : lo + _WINDOW_BLOCK]
            segment_starts = np.concatenate(([0], np.flatnonzero(np.diff(block_owner)) + 1))
            permuted = np.multiply(perm_a, shingle_hash[None, lo : lo + _WINDOW_BLOCK])
            permuted += perm_b
            texts_in_block = block_owner[segment_starts]
            minima[:, texts_in_block] = np.minimum(
                minima[:, texts_in_block], np.minimum.reduceat(permuted, segment_starts, axis=1)
            )
        minima >>= _U64(32)
        signatures[present] = minima.T
        return signatures

    def _band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n x bands) uint64 bucket keys; per-band coefficients keep equal values in different bands apart."""
        n = signatures.shape[0]
        banded = signatures[:, : self.bands * self.rows_per_band].reshape(n, self.bands, self.rows_per_band)
        return _mix64((banded.astype(np.uint64) * self._band_coefficients).sum(axis=2, dtype=np.uint64))

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """LSH bucket keys (n x bands) of signatures, reusable by :meth:`query_signatures`/:meth:`add_signatures`."""
        return self._band_keys(signatures)

    # --- updates ----------------------------------------------------------------------------------

    def add(self, row_id: RowId, text: str) -> None:
        self.add_many([(row_id, text)])

    def add_many(self, rows: Iterable[tuple[RowId, str]]) -> None:
        """Index rows (id, text); ids must be new. Texts are processed in vectorised batches."""
        batch: list[tuple[RowId, str]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _TEXT_BATCH:
                self._add_batch(batch)
                batch = []
        if batch:
            self._add_batch(batch)

    def _add_batch(self, batch: list[tuple[RowId, str]]) -> None:
        self.add_signatures([row_id for row_id, _ in batch], self.signatures([text for _, text in batch]))

    def add_signatures(self, ids: Sequence[RowId], signatures: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Index precomputed signatures (from :meth:`signatures` of an index with the same parameters),
        and their band keys when the caller already has them (:meth:`band_keys`)."""
        ids = list(ids)
        if len(set(ids)) != len(ids) or any(row_id in self._positions for row_id in ids):
            raise ValueError("row ids in a NearDupIndex must be unique")
        if len(ids) != len(signatures):
            raise ValueError("one signature per row id")
        if not ids:
            return
        first = len(self._ids)
        needed = first + len(ids)
        if needed > len(self._signature_store):
            grown = np.empty((max(needed, 2 * len(self._signature_store)), self.num_perm), dtype=np.uint32)
            grown[:first] = self._signatures
            self._signature_store = grown
        self._signature_store[first:needed] = signatures
        self._ids.extend(ids)
        self._positions.update(zip(ids, range(first, needed)))
        indexable = np.flatnonzero(signatures[:, 0] != _EMPTY)
        keys = self._band_keys(signatures[indexable]) if keys is None else keys[indexable]
        new_keys = keys.ravel()
        new_owners = np.repeat(indexable + first, self.bands)
        order = np.argsort(new_keys, kind="stable")
        new_keys, new_owners = new_keys[order], new_owners[order]
        at = np.searchsorted(self._recent_keys, new_keys, side="right")
        self._recent_keys = np.insert(self._recent_keys, at, new_keys)
        self._recent_owners = np.insert(self._recent_owners, at, new_owners)
        if len(self._recent_keys) > max(_RECENT_MERGE_AT, len(self._sorted_keys) // 8):
            self._merge_recent()

    def _merge_recent(self) -> None:
        if not len(self._recent_keys):
            return
        keys = np.concatenate((self._sorted_keys, self._recent_keys))
        owners = np.concatenate((self._sorted_owners, self._recent_owners))
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._sorted_owners = keys[order], owners[order]
        self._recent_keys = np.empty(0, dtype=np.uint64)
        self._recent_owners = np.empty(0, dtype=np.int64)

    # --- queries ----------------------------------------------------------------------------------

    def _candidate_pairs(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query position, indexed position) for every bucket shared by a query row's band keys and an
        indexed row, over both sorted runs; a pair may repeat (rows sharing several buckets)."""
        # Sorted needles: numpy's binary search then starts from the previous hit, which keeps the
        # searches in cache (measured ~3x faster than unsorted keys against a 100k-row index).
        flat = keys.ravel()
        order = np.argsort(flat, kind="stable")
        flat = flat[order]
        query_of_key = order // keys.shape[1]
        queries, owners = [], []
        for sorted_keys, sorted_owners in (
            (self._sorted_keys, self._sorted_owners),
            (self._recent_keys, self._recent_owners),
        ):
            if not len(sorted_keys):
                continue
            lo = np.searchsorted(sorted_keys, flat, side="left")
            counts = np.searchsorted(sorted_keys, flat, side="right") - lo
            total = int(counts.sum())
            if not total:
                continue
            hit = np.flatnonzero(counts)
            counts, lo = counts[hit], lo[hit]
            # Positions lo, lo+1, ..., hi-1 of every hit bucket, as one array.
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            owners.append(sorted_owners[np.repeat(lo, counts) + offsets])
            queries.append(np.repeat(query_of_key[hit], counts))
        if not owners:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(queries), np.concatenate(owners)

    def _best_many(
        self,
        signatures: np.ndarray,
        keys: np.ndarray,
        *,
        before: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
    ) -> list[NearDupMatch | None]:
        """Best match per query row: the candidate with the highest estimated Jaccard (the earliest
        indexed row on ties) if it reaches the threshold. ``before[i]`` limits row i's candidates to
        rows indexed before that position; ``exclude[i]`` removes one position."""
        matches: list[NearDupMatch | None] = [None] * len(signatures)
        queries, owners = self._candidate_pairs(keys)
        keep = signatures[queries, 0] != _EMPTY
        if before is not None:
            keep &= owners < before[queries]
        if exclude is not None:
            keep &= owners != exclude[queries]
        if not keep.all():
            queries, owners = queries[keep], owners[keep]
        if not queries.size:
            return matches
        # Unique (query, owner) pairs, sorted by query then owner.
        pairs = np.unique(queries * len(self._ids) + owners)
        queries, owners = pairs // len(self._ids), pairs % len(self._ids)
        agreeing = np.count_nonzero(self._signature_store[owners] == signatures[queries], axis=1)
        # Per query, the most agreeing candidate; on a tie the earliest (lexsort keeps owner order).
        order = np.lexsort((owners, -agreeing, queries))
        queries, owners, agreeing = queries[order], owners[order], agreeing[order]
        firsts = np.flatnonzero(np.concatenate(([True], queries[1:] != queries[:-1])))
        estimates = agreeing[firsts] / self.num_perm
        for query, owner, estimate in zip(
            queries[firsts].tolist(), owners[firsts].tolist(), estimates.tolist()
        ):
            if estimate >= self.threshold:
                matches[query] = NearDupMatch(self._ids[owner], estimate)
        return matches

    def query_signatures(
        self, signatures: np.ndarray, keys: np.ndarray | None = None, *, before: np.ndarray | None = None
    ) -> list[NearDupMatch | None]:
        """Like :meth:`query_many` for signatures (and band keys) already computed: saves hashing twice.
        With ``before``, row i only matches rows indexed at positions below ``before[i]``."""
        if keys is None:
            keys = self._band_keys(signatures)
        return self._best_many(signatures, keys, before=before)

    def query_signature(self, signature: np.ndarray, keys: np.ndarray | None = None) -> NearDupMatch | None:
        """Like :meth:`query` for one signature (and its band keys) already computed."""
        return self.query_signatures(signature[None, :], None if keys is None else keys[None, :])[0]

    def query(self, text: str) -> NearDupMatch | None:
        """Best indexed match for a text with estimated Jaccard >= threshold, or None."""
        return self.query_many([text])[0]

    def query_many(self, texts: Sequence[str]) -> list[NearDupMatch | None]:
        """Like :meth:`query` for many texts: signatures, bucket look-ups and estimates are each one
        vectorised operation over all of them."""
        matches: list[NearDupMatch | None] = []
        for start in range(0, len(texts), _TEXT_BATCH):
            signatures = self.signatures(texts[start : start + _TEXT_BATCH])
            matches.extend(self._best_many(signatures, self._band_keys(signatures)))
        return matches

    def query_row(self, row_id: RowId) -> NearDupMatch | None:
        """Best match for an already indexed row, other than itself (for curator review of the set)."""
        position = self._positions[row_id]
        signature = self._signatures[position : position + 1]
        return self._best_many(signature, self._band_keys(signature), exclude=np.array([position]))[0]

    # --- persistence ------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        rows: Iterable[tuple[RowId, str]],
        threshold: float = 0.8,
        num_perm: int = 128,
        shingle_size: int = 5,
    ) -> NearDupIndex:
        index = cls(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size)
        index.add_many(rows)
        index._merge_recent()
        return index

    def to_bytes(self) -> bytes:
        """Compact, pickle-free serialisation (numpy ``.npz``): safe to load, fast to read."""
        self._merge_recent()
        header = {
            "format": FORMAT_VERSION,
            "threshold": self.threshold,
            "num_perm": self.num_perm,
            "shingle_size": self.shingle_size,
            "seed": self.seed,
            "ids": self._ids,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            signatures=self._signatures,
            keys=self._sorted_keys,
            owners=self._sorted_owners,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> NearDupIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
            if header.get("format") != FORMAT_VERSION:
                raise ValueError(f"Unsupported NearDupIndex format {header.get('format')!r}")
            index = cls(header["threshold"], header["num_perm"], header["shingle_size"], header["seed"])
            index._signature_store = arrays["signatures"]
            index._sorted_keys = arrays["keys"]
            index._sorted_owners = arrays["owners"]
        index._ids = header["ids"]
        index._positions = {row_id: i for i, row_id in enumerate(index._ids)}
        return index

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temporary file + rename) so a concurrent reader never sees half a file."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=target.name, delete=False) as handle:
            handle.write(self.to_bytes())
        os.replace(handle.name, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NearDupIndex:
        return cls.from_bytes(Path(path).read_bytes())
