"""Retrieval engine: plain Python, no Django.

Build one index per published Datanet version (:func:`build_index`: MiniLM embeddings in a usearch HNSW
graph plus optional BM25 arrays, written as files pinned by a manifest hash), open it verified and
memory-mapped (:func:`open_index`), and search one or several versions as one collection
(:class:`Searcher`, dense + BM25 fused by reciprocal rank fusion).
"""

from .encoder import MODEL_NAME, Encoder, PassageEncoder, model_fingerprint
from .errors import IndexIntegrityError, RetrievalError
from .lexical import lexical_terms
from .search import RRF_K, Searcher, SearchHit, reciprocal_rank_fusion
from .store import (
    DenseParams,
    IndexManifest,
    IndexVerification,
    RetrievalIndex,
    build_index,
    open_index,
    verify_index,
)

__all__ = [
    "MODEL_NAME",
    "RRF_K",
    "DenseParams",
    "Encoder",
    "IndexIntegrityError",
    "IndexManifest",
    "IndexVerification",
    "PassageEncoder",
    "RetrievalError",
    "RetrievalIndex",
    "SearchHit",
    "Searcher",
    "build_index",
    "lexical_terms",
    "model_fingerprint",
    "open_index",
    "reciprocal_rank_fusion",
    "verify_index",
]
