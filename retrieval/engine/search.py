"""Search over one or several index versions, dense, lexical or both fused by reciprocal rank fusion.

Per query, each index contributes its best ``candidates`` passages by cosine similarity (usearch HNSW)
and, with lexical scoring, its best ``candidates`` by BM25. The lists of all indexes are merged by score:
cosine similarities are comparable across indexes because every index must use the query's model;
BM25 scores are only approximately comparable (each index has its own idf), which is why fusion works
on ranks, not scores.

Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009): a passage's fused score is
``sum over lists of 1 / (rrf_k + rank)``, with 1-based ranks and ``rrf_k = 60``; a passage missing from
a list gets nothing from it. Ties are broken by the dense similarity, then by index and position, so
results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .encoder import Encoder, check_same_model
from .errors import RetrievalError
from .store import RetrievalIndex

RRF_K = 60
Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result. ``score`` is the fused RRF score (hybrid), the cosine similarity (dense) or the BM25
    score (lexical); ``rank`` is 1-based. The per-list scores and ranks say why the passage is here
    (``None`` where it was not among that list's candidates)."""

    passage_id: str
    index_id: str
    score: float
    rank: int
    dense_score: float | None = None
    dense_rank: int | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None


# (index number, position) identifies a passage across the merged lists.
_Key = tuple[int, int]


def _merged(parts: list[tuple[int, np.ndarray, np.ndarray]], count: int) -> list[tuple[_Key, float]]:
    entries = [((shard, int(p)), float(s)) for shard, positions, scores in parts for p, s in zip(positions, scores)]
    entries.sort(key=lambda entry: (-entry[1], entry[0]))
    return entries[:count]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[_Key]], rrf_k: int = RRF_K) -> dict[_Key, float]:
    fused: dict[_Key, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (rrf_k + rank)
    return fused


class Searcher:
    """Queries one or more opened indexes (one per published version) as one collection.

    ``encoder`` embeds query text; it may be omitted when every search passes ``query_vector``.
    """

    def __init__(
        self,
        indexes: Sequence[RetrievalIndex],
        encoder: Encoder | None = None,
        *,
        rrf_k: int = RRF_K,
        candidates: int = 50,
    ) -> None:
        if not indexes:
            raise ValueError("a Searcher needs at least one index")
        dimensions = {index.manifest.embedding.get("dimension") for index in indexes}
        fingerprints = {index.manifest.embedding.get("fingerprint") for index in indexes}
        if len(dimensions) > 1 or len(fingerprints) > 1:
            raise RetrievalError(
                "model_mismatch", "These indexes were built with different embedding models; search them separately."
            )
        if encoder is not None:
            for index in indexes:
                check_same_model(index.manifest.embedding, encoder.identity, index.index_id[:12])
        self.indexes = list(indexes)
        self.encoder = encoder
        self.rrf_k = rrf_k
        self.candidates = candidates

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best passages for ``query`` across all indexes, best first.

        ``mode`` defaults to "hybrid" when every index has lexical scoring, else "dense". Raises
        :class:`RetrievalError` ``empty_query`` for a blank query and ``no_lexical`` when lexical scoring
        is asked of an index built without it.
        """
        if k <= 0:
            raise ValueError("k must be positive")
        if not query.strip() and query_vector is None:
            raise RetrievalError("empty_query", "Type some words to search for.")
        all_lexical = all(index.has_lexical for index in self.indexes)
        mode = mode or ("hybrid" if all_lexical else "dense")
        if mode not in ("hybrid", "dense", "lexical"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode != "dense" and not all_lexical:
            raise RetrievalError("no_lexical", "An index was built without lexical scoring; search it in dense mode.")
        depth = max(k, self.candidates) if mode == "hybrid" else k

        dense: list[tuple[_Key, float]] = []
        if mode != "lexical":
            vector = self._query_vector(query, query_vector)
            dense = _merged([(n, *index.dense_top(vector, depth)) for n, index in enumerate(self.indexes)], depth)
        lexical: list[tuple[_Key, float]] = []
        if mode != "dense" and query.strip():
            lexical = _merged([(n, *index.lexical_top(query, depth)) for n, index in enumerate(self.indexes)], depth)

        dense_rank = {key: (rank, score) for rank, (key, score) in enumerate(dense, start=1)}
        lexical_rank = {key: (rank, score) for rank, (key, score) in enumerate(lexical, start=1)}
        if mode == "hybrid":
            fused = reciprocal_rank_fusion([[key for key, _ in dense], [key for key, _ in lexical]], self.rrf_k)
            ordered = sorted(fused, key=lambda key: (-fused[key], -dense_rank.get(key, (0, -2.0))[1], key))
            scored = [(key, fused[key]) for key in ordered[:k]]
        else:
            scored = (dense if mode == "dense" else lexical)[:k]
        return [self._hit(key, score, rank, dense_rank, lexical_rank) for rank, (key, score) in enumerate(scored, 1)]

    def _query_vector(self, query: str, query_vector: np.ndarray | None) -> np.ndarray:
        if query_vector is not None:
            vector = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        elif self.encoder is None:
            raise ValueError("this Searcher has no encoder: pass query_vector")
        else:
            vector = self.encoder.encode([query])[0]
        dimension = self.indexes[0].manifest.embedding["dimension"]
        if vector.shape != (dimension,):
            raise ValueError(f"query vector has shape {vector.shape}, the indexes have {dimension} dimensions")
        return vector

    def _hit(self, key: _Key, score: float, rank: int, dense_rank: dict, lexical_rank: dict) -> SearchHit:
        index = self.indexes[key[0]]
        d_rank, d_score = dense_rank.get(key, (None, None))
        l_rank, l_score = lexical_rank.get(key, (None, None))
        return SearchHit(index.passage_id(key[1]), index.index_id, score, rank, d_score, d_rank, l_score, l_rank)
