"""The model root: the one directory a model server loads bases and adapters from.

A load request names what to load by id (an adapter's version hash, a base's id), never by path. The
server resolves the id inside its root and refuses anything unknown or anything that resolves
outside the root (a symlink planted in it included), so a caller holding the token still cannot make
the server read an arbitrary file. Layout::

    <root>/adapters/<version hash>/adapter_config.json, adapter_model.safetensors
    <root>/bases/<base id>/config.json, weights, tokenizer files

Whoever deploys puts the files there: `publish_adapter` and `publish_base` (used by the deployment
poller, which runs where the root is mounted) stage a copy (bases: hard links when the source is on the
same filesystem, so a multi-gigabyte base costs no space) and rename it into place, so a server never
sees a half-written directory. Ids are content-derived (a version hash; a base's slug plus a digest of
its files), so a published directory is never rewritten. Plain Python: no torch, no Django.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import AdapterNotFoundError, InvalidRequestError

ADAPTERS = "adapters"
BASES = "bases"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# One path segment: letters, digits, '.', '_', '-', not starting with a dot (so never '.' or '..').
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ModelStore:
    """Resolves ids to directories inside ``root`` (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        for kind in (ADAPTERS, BASES):
            (self.root / kind).mkdir(parents=True, exist_ok=True)

    def adapter_dir(self, version: object) -> Path:
        return self._resolve(ADAPTERS, version, ADAPTER_FILES[0], param="version", what="adapter version")

    def base_dir(self, model: object) -> Path:
        return self._resolve(BASES, model, "config.json", param="model", what="base model")

    def _resolve(self, kind: str, ident: object, required: str, *, param: str, what: str) -> Path:
        if not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident):
            raise InvalidRequestError(
                f"{param} must be the id of a published {what} (letters, digits, '.', '_' or '-', at most 128,"
                f" such as a version hash), not a path; got {str(ident)[:80]!r}",
                param=param,
            )
        resolved = (self.root / kind / ident).resolve()
        if not resolved.is_relative_to(self.root / kind):
            raise InvalidRequestError(
                f"{what} {ident!r} resolves outside the model root ({self.root / kind}); a server only loads"
                f" files under its root: publish a real copy there instead of a link",
                param=param,
            )
        if not (resolved / required).is_file():
            raise AdapterNotFoundError(
                f"no {what} {ident!r} under the model root {self.root / kind}: publish it there first"
                f" (the deployment poller does so when it shares the root with this server)",
                param=param,
            )
        return resolved


def _source_files(source: Path) -> list[Path]:
    return sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))


def base_model_id(slug: str, source: str | Path) -> str:
    """The id a base is published under: its slug and a digest of its files' names, sizes and times.

    Stat-based (not a content hash) so that a multi-gigabyte base costs a directory walk, not a read;
    any rewrite of a file changes the id, so a changed base is published afresh, never mixed."""
    source = Path(source)
    digest = hashlib.sha256(str(source.resolve()).encode())
    for path in _source_files(source):
        stat = path.stat()
        digest.update(f"{path.relative_to(source).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", slug).strip("-._")[:100] or "base"
    return f"{stem}-{digest.hexdigest()[:16]}"


def publish_adapter(root: str | Path, version: str, source: str | Path) -> Path:
    """Copy an adapter's two files to ``<root>/adapters/<version>`` (kept if already there).

    Copied, not linked: the engine checks the digest on every read, and a copy cannot change under it
    when the registry's file is rewritten."""
    source = Path(source)
    return _publish(Path(root) / ADAPTERS, version, ((source / name, name) for name in ADAPTER_FILES), link=False)


def publish_base(root: str | Path, model_id: str, source: str | Path) -> Path:
    """Place a base model directory at ``<root>/bases/<model_id>`` (hard links, else copies)."""
    source = Path(source)
    files = ((path, path.relative_to(source).as_posix()) for path in _source_files(source))
    return _publish(Path(root) / BASES, model_id, files, link=True)


def _publish(parent: Path, ident: str, files: Iterable[tuple[Path, str]], *, link: bool) -> Path:
    if not ID_PATTERN.fullmatch(ident):
        raise ValueError(f"{ident!r} is not a valid model id")
    target = parent / ident
    if target.is_dir():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{ident}.", dir=parent))
    try:
        for source, name in files:
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            real = source.resolve()  # hub snapshots are links to blobs: place the blob itself
            if link:
                try:
                    os.link(real, destination)
                    continue
                except OSError:
                    pass  # another filesystem, or links not allowed: copy
            shutil.copyfile(real, destination)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent publisher winning the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = ["ADAPTERS", "BASES", "ModelStore", "base_model_id", "publish_adapter", "publish_base"]
