"""BM25 lexical scoring, stored as memory-mappable arrays.

Terms are ``\\w+`` runs of the NFKC-normalised, casefolded text, less Lucene's 33 English stop words
("the", "of", "and", ...): BM25's idf discounts common words but they still put passages in the lexical
candidate list, and reciprocal rank fusion then rewards a passage for appearing there at all, so a
query's function words would pull in passages that share nothing else with it. No stemming: a stemmer
would tie the index to one language.

A term is stored as the first 8 bytes of its BLAKE2b hash, so the vocabulary is a sorted ``uint64``
array searched with ``np.searchsorted`` rather than a dictionary loaded into memory; at a million
distinct terms the chance of any two colliding is about 3e-8.

Scores follow Lucene's BM25: ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`` and
``w(t, d) = idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avg_len))`` with k1 = 1.2,
b = 0.75, precomputed per (term, passage) at build time; a query scores ``sum(w(t, d))`` over its
distinct terms.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER = "nfkc-casefold-words-lucene-english-stop/1"
# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
K1 = 1.2
B = 0.75
FILES = ("bm25_terms.npy", "bm25_offsets.npy", "bm25_passages.npy", "bm25_weights.npy")
_WORD = re.compile(r"\w+")


def lexical_terms(text: str) -> list[str]:
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return [word for word in words if word not in STOP_WORDS]


@functools.lru_cache(maxsize=1 << 20)  # vocabularies repeat: each distinct term is hashed once per process
def _term_hash(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "little")


def term_hashes(terms: list[str]) -> np.ndarray:
    return np.fromiter((_term_hash(term) for term in terms), dtype=np.uint64, count=len(terms))


class BM25Builder:
    """Accumulates passages one at a time; :meth:`write` computes the weights and saves the arrays."""

    def __init__(self) -> None:
        self._terms: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._lengths: list[int] = []

    def add(self, text: str) -> None:
        terms = lexical_terms(text)
        counts = Counter(terms)
        self._terms.append(term_hashes(list(counts)))
        self._counts.append(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
        self._lengths.append(len(terms))

    def write(self, directory: Path) -> dict[str, Any]:
        passages = len(self._lengths)
        lengths = np.asarray(self._lengths, dtype=np.float32)
        average = float(lengths.mean()) if passages and lengths.mean() > 0 else 1.0
        hashes = np.concatenate(self._terms) if self._terms else np.zeros(0, np.uint64)
        tf = np.concatenate(self._counts) if self._counts else np.zeros(0, np.float32)
        owner = np.repeat(np.arange(passages, dtype=np.int32), [len(t) for t in self._terms])
        order = np.lexsort((owner, hashes))
        hashes, tf, owner = hashes[order], tf[order], owner[order]
        terms, starts, df = np.unique(hashes, return_index=True, return_counts=True)
        idf = np.log1p((passages - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = K1 * (1 - B + B * lengths[owner] / average)
        weights = (np.repeat(idf, df) * tf * (K1 + 1) / (tf + norm)).astype(np.float32)
        offsets = np.append(starts, len(hashes)).astype(np.int64)
        for name, array in zip(FILES, (terms, offsets, owner, weights)):
            np.save(directory / name, array, allow_pickle=False)
        self._terms, self._counts = [], []
        return {"scheme": "bm25", "tokenizer": TOKENIZER, "k1": K1, "b": B, "terms": int(len(terms)),
                "average_length": round(average, 6)}


class BM25Scorer:
    """Memory-mapped BM25 arrays of one index."""

    def __init__(self, directory: Path, passage_count: int) -> None:
        arrays = [np.load(directory / name, mmap_mode="r", allow_pickle=False) for name in FILES]
        self.terms, self.offsets, self.passages, self.weights = arrays
        self.passage_count = passage_count
        if (
            self.offsets.shape != (len(self.terms) + 1,)
            or self.passages.shape != self.weights.shape
            or (len(self.offsets) and int(self.offsets[-1]) != len(self.passages))
        ):
            raise ValueError("BM25 arrays disagree in shape")

    def top(self, query: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the best ``count`` passages that share a term with the query."""
        wanted = term_hashes(sorted(set(lexical_terms(query))))
        if not len(wanted) or not len(self.terms):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        slots = np.searchsorted(self.terms, wanted)
        inside = slots < len(self.terms)
        slots, wanted = slots[inside], wanted[inside]
        slots = slots[self.terms[slots] == wanted]
        scores = np.zeros(self.passage_count, dtype=np.float32)
        for slot in slots:
            start, stop = int(self.offsets[slot]), int(self.offsets[slot + 1])
            scores[self.passages[start:stop]] += self.weights[start:stop]  # a term lists a passage once
        matched = np.flatnonzero(scores)
        if len(matched) > count:
            matched = matched[np.argpartition(-scores[matched], count - 1)[:count]]
        order = np.lexsort((matched, -scores[matched]))  # best first, ties by position
        return matched[order].astype(np.int64), scores[matched[order]]
