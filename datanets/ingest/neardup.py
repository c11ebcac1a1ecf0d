"""Near-duplicate detection: MinHash signatures + LSH banding, vectorised with numpy.

Shingles are *character 5-grams* of ``normalise_text(text, casefold=True)``: they need no tokeniser
(so they work for languages written without spaces), and one edited word only disturbs the few
shingles that overlap it. A text shorter than the shingle size is one shingle.

Why not datasketch's own objects: its MinHash hashes shingles one by one in Python, and its in-memory
LSH keeps a Python set per bucket (hundreds of MB for 100k rows). Here the whole pipeline (shingle
hashing, the permutation family, banding) is numpy over many texts at once, and the index is a few
flat arrays: ~65 MB for 100k rows at num_perm=128, serialised without pickle. The banding parameters
are chosen exactly as datasketch's ``MinHashLSH`` chooses them (minimising the equally weighted
false-positive and false-negative areas), so thresholds mean the same thing.

The permutation family is multiply-add-shift hashing of 64-bit shingle hashes: ``(a*x + b) >> 32``
with odd random ``a``, a standard universal family for MinHash.
"""

from __future__ import annotations

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
# Rows of the (windows x num_perm) hash matrix computed at once: bounds memory to ~16 MB per temporary.
_WINDOW_BLOCK = 16384
# Texts per signature batch when indexing many rows.
_TEXT_BATCH = 512
_EMPTY = np.iinfo(np.uint32).max
_SHINGLE_BASE = _U64(0x100000001B3)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial hashes over all 64 bits (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


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
        # Band keys live in sorted arrays (searched with searchsorted) plus a small dict of recent keys
        # that is merged in when it grows, so single inserts stay cheap and lookups stay logarithmic.
        self._sorted_keys = np.empty(0, dtype=np.uint64)
        self._sorted_owners = np.empty(0, dtype=np.int64)
        self._recent: dict[int, list[int]] = {}
        self._recent_size = 0

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

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """MinHash signatures (len(texts) x num_perm, uint32); an empty text gets all-max values."""
        k = self.shingle_size
        normalised = [normalise_text(t, casefold=True) for t in texts]
        signatures = np.full((len(texts), self.num_perm), _EMPTY, dtype=np.uint32)
        present = [i for i, t in enumerate(normalised) if t]
        if not present:
            return signatures
        padded = [normalised[i].ljust(k, "\0") for i in present]
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
        shingle_hash = _mix64(shingle_hash)
        present_rows = np.asarray(present)
        for block in range(0, len(shingle_hash), _WINDOW_BLOCK):
            hashes = shingle_hash[block : block + _WINDOW_BLOCK]
            block_owner = owner[block : block + _WINDOW_BLOCK]
            # (num_perm x windows) layout, in-place ops: reducing along contiguous rows is ~4x faster
            # than the transposed layout, and this product is where building an index spends its time.
            permuted = np.multiply(self._perm_a[:, None], hashes[None, :])
            permuted += self._perm_b[:, None]
            permuted >>= _U64(32)
            segment_starts = np.concatenate(([0], np.flatnonzero(np.diff(block_owner)) + 1))
            minima = np.minimum.reduceat(permuted.astype(np.uint32), segment_starts, axis=1).T
            rows = present_rows[block_owner[segment_starts]]
            signatures[rows] = np.minimum(signatures[rows], minima)
        return signatures

    def _band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n x bands) uint64 bucket keys; per-band coefficients keep equal values in different bands apart."""
        n = signatures.shape[0]
        banded = signatures[:, : self.bands * self.rows_per_band].reshape(n, self.bands, self.rows_per_band)
        return _mix64((banded.astype(np.uint64) * self._band_coefficients).sum(axis=2, dtype=np.uint64))

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
        if len(set(ids)) != len(ids) or any(row_id in self._positions for row_id in ids):
            raise ValueError("row ids in a NearDupIndex must be unique")
        first = len(self._ids)
        needed = first + len(ids)
        if needed > len(self._signature_store):
            grown = np.empty((max(needed, 2 * len(self._signature_store)), self.num_perm), dtype=np.uint32)
            grown[:first] = self._signatures
            self._signature_store = grown
        self._signature_store[first:needed] = signatures
        self._ids.extend(ids)
        self._positions.update((row_id, first + i) for i, row_id in enumerate(ids))
        indexable = np.flatnonzero(signatures[:, 0] != _EMPTY)
        keys = self._band_keys(signatures[indexable]) if keys is None else keys[indexable]
        for owner, row_keys in zip((indexable + first).tolist(), keys.tolist()):
            for key in row_keys:
                self._recent.setdefault(key, []).append(owner)
        self._recent_size += keys.size
        if self._recent_size > max(65536, len(self._sorted_keys) // 8):
            self._merge_recent()

    def _merge_recent(self) -> None:
        if not self._recent_size:
            return
        counts = [len(owners) for owners in self._recent.values()]
        recent_keys = np.repeat(np.fromiter(self._recent.keys(), dtype=np.uint64, count=len(counts)), counts)
        recent_owners = np.fromiter(
            (owner for owners in self._recent.values() for owner in owners), dtype=np.int64, count=sum(counts)
        )
        keys = np.concatenate((self._sorted_keys, recent_keys))
        owners = np.concatenate((self._sorted_owners, recent_owners))
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._sorted_owners = keys[order], owners[order]
        self._recent, self._recent_size = {}, 0

    # --- queries ----------------------------------------------------------------------------------

    def _candidates(self, keys: np.ndarray) -> np.ndarray:
        lo = np.searchsorted(self._sorted_keys, keys, side="left")
        hi = np.searchsorted(self._sorted_keys, keys, side="right")
        found = [self._sorted_owners[a:b] for a, b in zip(lo.tolist(), hi.tolist()) if b > a]
        if self._recent:
            found.extend(np.asarray(self._recent[key]) for key in keys.tolist() if key in self._recent)
        return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)

    def _best(
        self, signature: np.ndarray, keys: np.ndarray, exclude: int | None = None
    ) -> NearDupMatch | None:
        if signature[0] == _EMPTY:
            return None
        candidates = self._candidates(keys)
        if exclude is not None:
            candidates = candidates[candidates != exclude]
        if not candidates.size:
            return None
        estimates = (self._signatures[candidates] == signature).mean(axis=1)
        best = int(np.argmax(estimates))
        if estimates[best] < self.threshold:
            return None
        return NearDupMatch(self._ids[int(candidates[best])], float(estimates[best]))

    def query_signature(self, signature: np.ndarray, keys: np.ndarray | None = None) -> NearDupMatch | None:
        """Like :meth:`query` for a signature (and band keys) already computed: saves hashing twice."""
        return self._best(signature, self._band_keys(signature[None, :])[0] if keys is None else keys)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """LSH bucket keys (n x bands) of signatures, reusable by :meth:`query_signature`/:meth:`add_signatures`."""
        return self._band_keys(signatures)

    def query(self, text: str) -> NearDupMatch | None:
        """Best indexed match for a text with estimated Jaccard >= threshold, or None."""
        return self.query_many([text])[0]

    def query_many(self, texts: Sequence[str]) -> list[NearDupMatch | None]:
        """Like :meth:`query` for many texts, sharing the vectorised signature computation."""
        signatures = self.signatures(texts)
        keys = self._band_keys(signatures)
        return [self._best(signatures[i], keys[i]) for i in range(len(texts))]

    def query_row(self, row_id: RowId) -> NearDupMatch | None:
        """Best match for an already indexed row, other than itself (for curator review of the set)."""
        position = self._positions[row_id]
        signature = self._signatures[position]
        return self._best(signature, self._band_keys(signature[None, :])[0], exclude=position)

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
