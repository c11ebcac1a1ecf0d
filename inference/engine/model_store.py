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
its files), so a published directory is never rewritten.

A store may be bounded (``max_bytes``): :meth:`ModelStore.prune` then removes the least recently used
adapters that no server holds until the root fits (:mod:`.pruning`); an adapter being loaded through
:meth:`ModelStore.holding_adapter` is never removed. Plain Python: no torch, no Django.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from . import pruning
from .errors import AdapterNotFoundError, InvalidRequestError

ADAPTERS = "adapters"
BASES = "bases"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# One path segment: letters, digits, '.', '_', '-', not starting with a dot (so never '.' or '..').
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ModelStore:
    """Resolves ids to directories inside ``root`` (created if missing). ``max_bytes`` (None or 0: no
    bound) is the size :meth:`prune` keeps the root under; ``min_age_s`` spares adapters used that recently."""

    def __init__(self, root: str | Path, *, max_bytes: int | None = None,
                 min_age_s: float = pruning.MIN_AGE_S) -> None:
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
            raise ValueError(f"max_bytes must be a whole number of bytes >= 0 (0: no bound), not {max_bytes!r}")
        self.root = Path(root).expanduser().resolve()
        self.max_bytes = max_bytes or None
        self.min_age_s = min_age_s
        for kind in (ADAPTERS, BASES):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def adapter_dir(self, version: object) -> Path:
        return self._resolve(ADAPTERS, version, ADAPTER_FILES[0], param="version", what="adapter version")

    @contextlib.contextmanager
    def holding_adapter(self, version: object) -> Iterator[Path]:
        """The adapter's directory, never pruned while the block runs (a load in progress); its last use
        is now."""
        with self._lock:
            path = self.adapter_dir(version)
            self._held[path.name] += 1
        self.touch_adapter(path.name)
        try:
            yield path
        finally:
            with self._lock:
                self._held[path.name] -= 1
                if self._held[path.name] <= 0:
                    del self._held[path.name]

    def touch_adapter(self, version: str) -> None:
        """Mark the adapter used now (its directory's time), which puts it last in the eviction order."""
        if ID_PATTERN.fullmatch(str(version)):
            with contextlib.suppress(OSError):  # gone, or a read-only root: it only loses its place in line
                os.utime(self.root / ADAPTERS / version)

    def prune(self, *, in_use: Iterable[str] | Callable[[], Iterable[str]] = (), dry_run: bool = False,
              max_bytes: int | None = None, now: float | None = None) -> pruning.PrunePlan:
        """Remove least recently used adapters until the root fits ``max_bytes`` (default: the store's).

        Protected: ``in_use`` (a callable is read under the store's lock, so a load finishing meanwhile is
        either held or in it), adapters held by :meth:`holding_adapter`, those named by any server's live
        lease, and those used within ``min_age_s``. ``dry_run``: only the plan."""
        bound = self.max_bytes if max_bytes is None else max_bytes
        with self._lock:
            protected = set(in_use() if callable(in_use) else in_use) | set(self._held)
            protected |= pruning.leased_versions(self.root, now=now)
            result = pruning.plan(self.root, max_bytes=bound, in_use=protected, min_age_s=self.min_age_s, now=now)
            if not dry_run and result.remove:
                pruning.carry_out(result)
        return result

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
