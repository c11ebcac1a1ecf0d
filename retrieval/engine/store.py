"""Retrieval index files: one directory per published Datanet version, written once, verified on open.

A directory holds:

* ``passages.arrow``: the passage ids, in index order (Arrow IPC, memory-mapped on open);
* ``dense.usearch``: the usearch HNSW graph with the unit vectors (cosine metric), opened as a
  memory-mapped view, so opening costs no copy and several processes share the pages;
* ``bm25_*.npy``: the lexical arrays of :mod:`.lexical` (only when built with ``lexical=True``);
* ``manifest.json``: canonical JSON (sorted keys, no spaces) naming the encoder, the index parameters
  and the sha256 and size of every other file.

The index id is the sha256 of ``manifest.json``'s bytes, so one id pins every byte of the index. Passages
are inserted on one thread, so the same passages embedded by the same encoder (with the same library
versions) give byte-identical files and therefore the same id. An index with no passages has only
``passages.arrow`` and the manifest; searching it returns nothing.

:func:`open_index` re-hashes every file by default, so a usearch file that does not match its recorded
hash is never handed to the library: usearch trusts its input, and a damaged graph could crash the
process rather than raise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from .encoder import Encoder
from .errors import IndexIntegrityError, RetrievalError
from .lexical import FILES as LEXICAL_FILES
from .lexical import BM25Builder, BM25Scorer

FORMAT = "lineage.retrieval-index/1"
MANIFEST_NAME = "manifest.json"
PASSAGES_NAME = "passages.arrow"
DENSE_NAME = "dense.usearch"
ENCODE_BATCH = 256
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DenseParams:
    """HNSW parameters. The defaults reach recall@10 above 0.95 against exact search even on unstructured
    random vectors at a few thousand passages (real embeddings are easier); ``expansion_search`` can be
    raised per searcher without rebuilding. ``dtype`` "f16" halves the file at a small cost in recall.
    ``build_threads`` above 1 builds faster but makes the graph, hence the index id, depend on thread
    timing; it is not recorded in the manifest."""

    connectivity: int = 32
    expansion_add: int = 200
    expansion_search: int = 128
    dtype: str = "f32"
    build_threads: int = 1


@dataclass(frozen=True)
class IndexManifest:
    index_id: str
    passage_count: int
    embedding: dict[str, Any]
    dense: dict[str, Any]
    lexical: dict[str, Any] | None
    files: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    body: dict[str, Any] = field(repr=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> IndexManifest:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError(f"not a retrieval index manifest (format {body.get('format') if isinstance(body, dict) else None!r})")
        return cls(
            index_id=hashlib.sha256(data).hexdigest(),
            passage_count=int(body["passage_count"]),
            embedding=dict(body["embedding"]),
            dense=dict(body["dense"]),
            lexical=dict(body["lexical"]) if body["lexical"] is not None else None,
            files={name: dict(entry) for name, entry in body["files"].items()},
            meta=dict(body["meta"]),
            body=body,
        )


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_index(
    directory: str | os.PathLike[str],
    passages: Iterable[tuple[str, str]],
    encoder: Encoder,
    *,
    lexical: bool = True,
    params: DenseParams | None = None,
    meta: Mapping[str, Any] | None = None,
) -> IndexManifest:
    """Embed ``(passage_id, text)`` pairs and write an index directory; return its manifest.

    Passages are embedded and inserted ``ENCODE_BATCH`` at a time, so only the graph (plus one batch)
    is held in memory, never all the texts. The files are written into a hidden sibling directory that
    is renamed into place at the end: ``directory`` appears complete or not at all. ``meta`` (the Datanet
    version id, say) is recorded in the manifest as given. Passage ids must be unique.
    """
    from usearch.index import Index

    target = Path(directory)
    if target.exists():
        raise RetrievalError("index_exists", f"{target} already exists; an index version is written once.")
    params = params or DenseParams()
    identity = dict(encoder.identity)
    dimension = int(identity["dimension"])
    work = target.parent / f".{target.name}.building-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        graph = Index(
            ndim=dimension,
            metric="cos",
            dtype=params.dtype,
            connectivity=params.connectivity,
            expansion_add=params.expansion_add,
            expansion_search=params.expansion_search,
        )
        lexical_builder = BM25Builder() if lexical else None
        ids: list[str] = []
        batch: list[tuple[str, str]] = []

        def flush() -> None:
            vectors = encoder.encode([text for _, text in batch])
            if vectors.shape != (len(batch), dimension):
                raise RetrievalError("bad_embeddings", f"the encoder returned shape {vectors.shape}")
            # One thread by default: insertion order then fixes the graph (and the bytes, and the id).
            keys = np.arange(len(ids), len(ids) + len(batch), dtype=np.uint64)
            graph.add(keys, vectors, threads=params.build_threads)
            for passage_id, text in batch:
                ids.append(passage_id)
                if lexical_builder is not None:
                    lexical_builder.add(text)
            batch.clear()

        for passage_id, text in passages:
            batch.append((str(passage_id), text))
            if len(batch) >= ENCODE_BATCH:
                flush()
        if batch:
            flush()
        if len(set(ids)) != len(ids):
            raise RetrievalError("duplicate_passage_id", "passage ids must be unique within an index")

        table = pa.table({"passage_id": pa.array(ids, type=pa.string())})
        with pa.OSFile(str(work / PASSAGES_NAME), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        lexical_body = None
        if ids:
            graph.save(str(work / DENSE_NAME))
            if lexical_builder is not None:
                lexical_body = lexical_builder.write(work)
        elif lexical:
            lexical_body = {"scheme": "bm25", "terms": 0}
        import usearch

        body = {
            "format": FORMAT,
            "passage_count": len(ids),
            "embedding": identity,
            "dense": {
                "library": "usearch",
                "library_version": usearch.__version__,
                "metric": "cos",
                "dtype": params.dtype,
                "connectivity": params.connectivity,
                "expansion_add": params.expansion_add,
                "expansion_search": params.expansion_search,
            },
            "lexical": lexical_body,
            "files": {
                path.name: {"sha256": _file_sha256(path), "bytes": path.stat().st_size}
                for path in sorted(work.iterdir())
            },
            "meta": dict(meta or {}),
        }
        raw = canonical_json(body)
        (work / MANIFEST_NAME).write_bytes(raw)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return IndexManifest.from_bytes(raw)


@dataclass(frozen=True, slots=True)
class IndexVerification:
    ok: bool
    index_id: str | None
    problems: tuple[str, ...]


def verify_index(
    directory: str | os.PathLike[str], expected_index_id: str | None = None, *, hashes: bool = True
) -> IndexVerification:
    """Check every file against the manifest (sizes always, sha256 when ``hashes``); never raises."""
    root = Path(directory)
    try:
        raw = (root / MANIFEST_NAME).read_bytes()
        manifest = IndexManifest.from_bytes(raw)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return IndexVerification(False, None, (f"manifest.json unreadable: {error}",))
    problems: list[str] = []
    if expected_index_id is not None and manifest.index_id != expected_index_id:
        problems.append(f"manifest hash {manifest.index_id[:12]} is not the expected index id {expected_index_id[:12]}")
    if canonical_json(manifest.body) != raw:
        problems.append("manifest.json is not in canonical form (it was edited)")
    required = {PASSAGES_NAME}
    if manifest.passage_count:
        required.add(DENSE_NAME)
        if manifest.lexical is not None:
            required.update(LEXICAL_FILES)
    for name in sorted(required - set(manifest.files)):
        problems.append(f"the manifest does not list {name}")
    for name, entry in sorted(manifest.files.items()):
        path = root / name
        if "/" in name or name.startswith("."):
            problems.append(f"the manifest lists an unsafe file name {name!r}")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry.get("bytes"):
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}")
        elif hashes and _file_sha256(path) != entry.get("sha256"):
            problems.append(f"{name} does not match the sha256 recorded in the manifest")
    return IndexVerification(not problems, manifest.index_id, tuple(problems))


class RetrievalIndex:
    """One opened index (one published version). Use :func:`open_index`."""

    def __init__(self, directory: Path, manifest: IndexManifest, expansion_search: int | None = None) -> None:
        from usearch.index import Index

        self.directory = directory
        self.manifest = manifest
        with pa.memory_map(str(directory / PASSAGES_NAME), "r") as source:
            self._ids = pa.ipc.open_file(source).read_all().column("passage_id")
        if len(self._ids) != manifest.passage_count:
            raise ValueError(f"{PASSAGES_NAME} holds {len(self._ids)} ids, the manifest says {manifest.passage_count}")
        self._graph = None
        self._lexical = None
        if manifest.passage_count:
            self._graph = Index.restore(str(directory / DENSE_NAME), view=True)
            if self._graph is None or len(self._graph) != manifest.passage_count:
                raise ValueError(f"{DENSE_NAME} does not hold {manifest.passage_count} vectors")
            if self._graph.ndim != manifest.embedding["dimension"]:
                raise ValueError(f"{DENSE_NAME} has {self._graph.ndim} dimensions, the manifest says otherwise")
            self._graph.expansion_search = expansion_search or manifest.dense["expansion_search"]
            if manifest.lexical is not None:
                self._lexical = BM25Scorer(directory, manifest.passage_count)

    @property
    def index_id(self) -> str:
        return self.manifest.index_id

    @property
    def has_lexical(self) -> bool:
        return self.manifest.lexical is not None

    def __len__(self) -> int:
        return self.manifest.passage_count

    def passage_id(self, position: int) -> str:
        return self._ids[position].as_py()

    def dense_top(self, vector: np.ndarray, count: int, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Positions and cosine similarities of the ``count`` nearest passages, best first."""
        if self._graph is None or count <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        matches = self._graph.search(
            np.asarray(vector, dtype=np.float32), min(count, len(self)), threads=1, exact=exact
        )
        return matches.keys.astype(np.int64), (1.0 - matches.distances).astype(np.float32)

    def lexical_top(self, query: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        if self._lexical is None or count <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return self._lexical.top(query, count)


def open_index(
    directory: str | os.PathLike[str],
    expected_index_id: str | None = None,
    *,
    verify_hashes: bool = True,
    expansion_search: int | None = None,
) -> RetrievalIndex:
    """Verify and open an index directory; raises :class:`IndexIntegrityError` when any check fails.

    Sizes and the manifest are always checked; ``verify_hashes=False`` skips re-hashing the files and is
    only for a directory this process (or its deployment) verified earlier.
    """
    root = Path(directory)
    verification = verify_index(root, expected_index_id, hashes=verify_hashes)
    if not verification.ok:
        raise IndexIntegrityError(str(root), verification.problems)
    manifest = IndexManifest.from_bytes((root / MANIFEST_NAME).read_bytes())
    if manifest.index_id != verification.index_id:
        raise IndexIntegrityError(str(root), ("manifest.json changed while the index was being opened",))
    try:
        return RetrievalIndex(root, manifest, expansion_search)
    except (OSError, ValueError, KeyError, pa.ArrowException) as error:
        raise IndexIntegrityError(str(root), (f"files cannot be loaded: {error}",)) from None
