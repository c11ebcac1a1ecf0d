"""Text embeddings on the model server: ``POST /v1/embeddings``, for the web tier's search queries.

The one model served is the bundled all-MiniLM-L6-v2 that retrieval indexes are built with (names
:data:`MODEL_NAME` or its short alias ``all-minilm-l6-v2``). It is run by the very class the index builds use
(``retrieval.engine.PassageEncoder``: sentence-transformers, mean pooling, unit vectors, 256-token
truncation), so a vector from here is the vector an in-process encode gives. The model loads once per
process, on the first request, and one encode runs at a time.

Request ``{"input": str | [str], "model": str, "encoding_format": "float" | "base64", "dimensions": int}``;
answer in OpenAI's shape ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
"model", "usage": {"prompt_tokens", "total_tokens"}}`` plus ``"model_identity": {"model", "fingerprint",
"dimension", "max_tokens"}`` (what an index records, so a caller can check it searches with the same model).
``base64`` is the little-endian float32 bytes, as OpenAI's clients expect. Plain Python, no Django.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence

import numpy as np

from .errors import EngineError, InvalidRequestError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # retrieval.engine.MODEL_NAME (not imported: loaded lazily)
ALIASES = {MODEL_NAME.lower(): MODEL_NAME, "all-minilm-l6-v2": MODEL_NAME}
MAX_INPUTS = 256  # texts in one request
ENCODING_FORMATS = ("float", "base64")


class EmbeddingModelNotFoundError(EngineError):
    """The request names a model this server does not embed with."""

    error_type = "not_found_error"
    http_status = 404


class Embedders:
    """The embedding models of one server process, each loaded on its first request and kept."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._encoders: dict[str, object] = {}
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()  # one encode at a time: the model is shared

    @staticmethod
    def resolve(model: str) -> str:
        name = ALIASES.get(model.strip().lower())
        if name is None:
            raise EmbeddingModelNotFoundError(
                f"this server embeds with {MODEL_NAME!r} (or 'all-minilm-l6-v2') only, not {model!r}", param="model")
        return name

    @property
    def loaded(self) -> list[str]:
        return sorted(self._encoders)

    def encoder(self, name: str):
        with self._load_lock:
            if name not in self._encoders:
                from retrieval.engine.encoder import PassageEncoder  # the index builds' encoder, torch-heavy

                self._encoders[name] = PassageEncoder(device=self.device)
            return self._encoders[name]

    def embed(self, texts: Sequence[str], model: str) -> tuple[np.ndarray, dict, int]:
        """Unit-length float32 vectors of ``texts``, the model's identity, and the tokens it read."""
        name = self.resolve(model)
        encoder = self.encoder(name)
        with self._encode_lock:
            vectors = encoder.encode(list(texts))
            model = encoder.model  # what it read: special tokens included, truncated as the encode was
            read = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)["input_ids"]
            tokens = sum(len(ids) for ids in read)
        return vectors, dict(encoder.identity), tokens


def parse_request(body: dict) -> tuple[list[str], str, str]:
    """``(texts, model, encoding_format)`` of a request body, or an :class:`InvalidRequestError` naming the
    field that is wrong."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise InvalidRequestError("input must be a string or a non-empty list of strings (token ids are not"
                                  " accepted)", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"input holds {len(texts)} texts; send at most {MAX_INPUTS} per request",
                                  param="input")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must name the embedding model, e.g. {MODEL_NAME!r}", param="model")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ENCODING_FORMATS:
        raise InvalidRequestError(f"encoding_format must be one of {list(ENCODING_FORMATS)}, not {encoding!r}",
                                  param="encoding_format")
    return texts, model, encoding


def embeddings_payload(vectors: np.ndarray, identity: dict, tokens: int, *, encoding: str,
                       dimensions: object = None) -> dict:
    """The OpenAI-shaped answer for ``vectors`` (rows in request order)."""
    if dimensions is not None and dimensions != identity["dimension"]:
        raise InvalidRequestError(f"{identity['model']} has {identity['dimension']} dimensions and cannot shorten"
                                  f" them; leave dimensions out (it was {dimensions!r})", param="dimensions")
    rows = np.ascontiguousarray(vectors, dtype="<f4")

    def encoded(row: np.ndarray):
        return base64.b64encode(row.tobytes()).decode("ascii") if encoding == "base64" else row.tolist()

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": n, "embedding": encoded(row)} for n, row in enumerate(rows)],
        "model": identity["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "model_identity": {key: identity[key] for key in ("model", "fingerprint", "dimension", "max_tokens")},
    }
