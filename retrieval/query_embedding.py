"""How a dense or hybrid search turns its query into a vector.

- **On the model servers** (`RETRIEVAL_EMBED_IN_PROCESS` off, the default whenever `INFERENCE_SERVER_URL` or
  `INFERENCE_SERVER_URLS` is set): `POST /v1/embeddings` through `inference.client.ModelServerClient`, routed to
  any healthy server with the shared token. The web process loads no model: it never imports torch or
  sentence-transformers (docs/architecture.md, "Models only where models belong").
- **In this process** (no model server configured: `make run`): the bundled MiniLM of
  `loading.passage_encoder`, loaded on the first dense search, one query at a time.

Both run the same encoder (`retrieval.engine.PassageEncoder`), so the vectors, and the results, are the same.
Either way the model that embeds the query must be the one the index was built with
(`engine.encoder.check_same_model`: the fingerprint the server reports, or the local model files'). A model
server that cannot embed is `QueryEmbeddingUnavailable`: 503 when it is unreachable or refuses this process's
token, 504 when it is too slow, 502 for anything else; its address is logged, never shown to the searcher.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from django.conf import settings

from inference.client import ModelServerClient, ModelServerError

from . import engine, loading
from .engine.encoder import check_same_model
from .errors import QueryEmbeddingUnavailable

logger = logging.getLogger("retrieval")
_local = threading.local()

LEXICAL_HINT = "Search with mode=lexical (BM25, which needs no model) meanwhile, or retry in a moment."


def _client() -> ModelServerClient:
    """One keep-alive client per thread, rebuilt when the servers, token or timeout change."""
    key = (settings.INFERENCE_SERVER_URL, settings.INFERENCE_SERVER_TOKEN, settings.RETRIEVAL_EMBED_TIMEOUT_S)
    if getattr(_local, "key", None) != key:
        if getattr(_local, "client", None) is not None:
            _local.client.close()
        timeout = settings.RETRIEVAL_EMBED_TIMEOUT_S
        _local.client = ModelServerClient(settings.INFERENCE_SERVER_URL, token=settings.INFERENCE_SERVER_TOKEN,
                                          timeout=timeout, connect_timeout=min(2.0, timeout))
        _local.key = key
    return _local.client


def query_vector(*, query: str, index: engine.RetrievalIndex) -> np.ndarray:
    """The unit-length MiniLM vector of `query`, for searching `index`. Raises `engine.RetrievalError`
    (`model_mismatch`) or `QueryEmbeddingUnavailable`."""
    return text_vectors(texts=[query], index=index)[0]


def text_vectors(*, texts: list[str], index: engine.RetrievalIndex) -> np.ndarray:
    """Unit-length MiniLM vectors of `texts` (one row each), comparable with `index`'s passages: a query, or the
    sentences a retrieval app's extractive answer chooses among. Raises as `query_vector`."""
    where = index.index_id[:12]
    if settings.RETRIEVAL_EMBED_IN_PROCESS:
        encoder = loading.passage_encoder()
        check_same_model(index.manifest.embedding, encoder.identity, where)
        with loading.encode_lock:
            return encoder.encode(list(texts))
    try:
        payload = _client().embed(list(texts), model=engine.MODEL_NAME)
    except ModelServerError as exc:
        raise _unavailable(exc) from exc
    try:
        identity = payload["model_identity"]
        if len(payload["data"]) != len(texts):
            raise IndexError(f"{len(payload['data'])} embeddings for {len(texts)} texts")
        vectors = np.asarray([item["embedding"] for item in payload["data"]], dtype=np.float32)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        logger.warning("the model server's embeddings answer is malformed: %r", exc)
        raise QueryEmbeddingUnavailable(
            "The model server answered the query's embedding with something that is not one. " + LEXICAL_HINT,
            code="model_server_error", status=502) from exc
    check_same_model(index.manifest.embedding, identity, where)
    if vectors.shape != (len(texts), index.manifest.embedding.get("dimension")):
        raise QueryEmbeddingUnavailable(
            f"The model server embedded the query in {vectors.shape[-1] if vectors.ndim == 2 else vectors.size} "
            f"dimensions; the index has {index.manifest.embedding.get('dimension')}. " + LEXICAL_HINT,
            code="model_server_error", status=502)
    return vectors


def _unavailable(exc: ModelServerError) -> QueryEmbeddingUnavailable:
    logger.warning("a search query could not be embedded on the model server: %s", exc.message)
    if exc.code == "model_server_auth":
        return QueryEmbeddingUnavailable(
            "Dense and hybrid search embed the query on the model server, which refused this site's token (an "
            "operator has to give the web tier and the model servers the same INFERENCE_SERVER_TOKEN). "
            + LEXICAL_HINT, code="model_server_auth", status=503)
    if exc.code == "model_server_timeout" or exc.status == 504:
        return QueryEmbeddingUnavailable(
            "The model server did not embed the query in time. " + LEXICAL_HINT, code="model_server_timeout",
            status=504)
    if exc.server_unusable:
        return QueryEmbeddingUnavailable(
            "Dense and hybrid search embed the query on the model server, which is not reachable right now. "
            + LEXICAL_HINT, code="model_server_unavailable", status=503)
    return QueryEmbeddingUnavailable(
        f"The model server could not embed the query ({exc.message}). " + LEXICAL_HINT, code="model_server_error",
        status=502)
