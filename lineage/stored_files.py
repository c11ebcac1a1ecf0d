"""Index directories kept in storage and read on this machine: the attribution index of a model version and the
retrieval index of a Datanet version are both a manifest plus the files it names, verified once and then trusted
while their stamps do not change."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from django.core.files.storage import default_storage


def local_directory(*, storage_prefix: str, manifest_name: str, cache_dir: Path,
                    files_of: Callable[[bytes], list[str]]) -> Path:
    """The directory holding `storage_prefix`'s files on this machine: the storage path itself when storage is
    local, else a copy downloaded once into `cache_dir` (marked `.complete` only after every file named by
    `files_of(manifest bytes)` arrived, so an interrupted download is redone)."""
    try:
        return Path(default_storage.path(f"{storage_prefix}/{manifest_name}")).parent
    except NotImplementedError:
        pass
    target = Path(cache_dir)
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        with default_storage.open(f"{storage_prefix}/{manifest_name}", "rb") as src:
            raw = src.read()
        (target / manifest_name).write_bytes(raw)
        for name in files_of(raw):
            with default_storage.open(f"{storage_prefix}/{name}", "rb") as src, open(target / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        (target / ".complete").touch()
    return target


def file_stamps(directory: Path) -> dict:
    """(size, mtime) of every file: a cheap per-use check that nothing changed since the files were verified."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file()}
