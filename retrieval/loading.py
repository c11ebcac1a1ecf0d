"""Per process: the passage encoder (all-MiniLM-L6-v2, loaded on first use) and the opened retrieval
indexes, kept in a small LRU cache (`RETRIEVAL_CACHE_INDEXES`). An index is verified (every file re-hashed
against its manifest, the manifest against the hash its row recorded) when it is first opened; each later
use only compares the files' sizes and modification times with those seen then, and verifies again when
they differ. Files are memory-mapped by the engine, so processes on one machine share their pages."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from lineage.stored_files import file_stamps, local_directory

from . import engine
from .engine.store import MANIFEST_NAME, IndexManifest
from .errors import IndexCorrupt
from .models import RetrievalIndex

_encoders: dict[str, engine.PassageEncoder] = {}
_encoder_lock = threading.Lock()
# One query embedded at a time per process: the model is shared, and a query takes milliseconds.
encode_lock = threading.Lock()


def encoder_device() -> str:
    """Where passages and queries are embedded (`RETRIEVAL_DEVICE`: auto picks CUDA when there is one)."""
    if settings.RETRIEVAL_DEVICE != "auto":
        return settings.RETRIEVAL_DEVICE
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def passage_encoder(device: str | None = None) -> engine.PassageEncoder:
    """The bundled MiniLM for this process and device; its weights load on the first encode."""
    device = device or encoder_device()
    with _encoder_lock:
        if device not in _encoders:
            _encoders[device] = engine.PassageEncoder(device=device)
        return _encoders[device]


@dataclass
class _Opened:
    index_hash: str
    index: engine.RetrievalIndex
    directory: Path
    stamps: dict


_cache: OrderedDict[str, _Opened] = OrderedDict()
_cache_lock = threading.Lock()


def _local_dir(index: RetrievalIndex) -> Path:
    return local_directory(storage_prefix=index.storage_prefix, manifest_name=MANIFEST_NAME,
                           cache_dir=Path(settings.RETRIEVAL_CACHE_DIR) / index.index_hash,
                           files_of=lambda raw: IndexManifest.from_bytes(raw).files)


def _open_verified(index: RetrievalIndex, directory: Path) -> _Opened:
    try:
        opened = engine.open_index(directory, index.index_hash)
        return _Opened(index.index_hash, opened, directory, file_stamps(directory))
    except engine.IndexIntegrityError as exc:
        raise IndexCorrupt(f"The search index of {index.version} failed verification ({'; '.join(exc.problems)}); "
                           "it has to be built again.") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"The search index of {index.version} cannot be read ({exc}); it has to be built again.") from exc


def opened_index(index: RetrievalIndex) -> engine.RetrievalIndex:
    """The ready index, opened and verified (once per process while its files stay as they were)."""
    try:
        directory = _local_dir(index)
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"The search index of {index.version} cannot be read ({exc}); it has to be built again.") from exc
    key = index.index_hash
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    if entry is not None and entry.directory == directory:
        try:
            unchanged = file_stamps(directory) == entry.stamps
        except OSError:
            unchanged = False
        if unchanged:
            return entry.index
    if entry is not None:
        evict(key)  # moved or touched since it was verified: verify again before trusting it
    entry = _open_verified(index, directory)
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > max(1, settings.RETRIEVAL_CACHE_INDEXES):
            _cache.popitem(last=False)
    return entry.index


def evict(index_hash: str) -> None:
    with _cache_lock:
        _cache.pop(index_hash, None)


def cache_clear() -> None:
    """Forget every opened index in this process (tests; after a rebuild)."""
    with _cache_lock:
        _cache.clear()


def cached_index_hashes() -> list[str]:
    """The indexes this process holds open, least recently used first."""
    with _cache_lock:
        return list(_cache)
