"""Keeping a model root under a size bound: the least recently used adapters go first, never one in use.

The root's size is what ``du`` would say of it: every regular file counted once (a base hard-linked from
the registry's storage is counted, once, at its size). When it is over ``max_bytes``, adapter
directories (``<root>/adapters/<version>``) are removed oldest "last used" first until it is not, or
until nothing removable is left. Last used is the directory's modification time: set when the adapter
is published, and touched by :class:`~.model_store.ModelStore` when a server loads or unloads it.

Never removed:

- an adapter in use: loaded on a server (the caller's set, and every server's *lease*, below), held by
  a load in progress, or named by the caller (the deployment poller's deployed versions, say);
- an adapter used in the last ``min_age_s`` seconds (default 10 minutes): one just published whose load
  is on its way, or one a server sharing the root is touching now;
- bases (they are loaded by id and large to publish again; unloading a base is an operator's decision).

Leases: every server writes ``<root>/.leases/<instance>.json`` listing the adapter versions it holds (on
each load and unload, refreshed as its health is read, removed when it shuts down), so servers sharing a
root (a volume mounted on several machines) and the ``inference_prune_model_root`` command never remove
what another server holds. A lease not refreshed for ``LEASE_TTL_S`` (a server that died without
removing it) stops protecting. Plain Python: no torch, no Django.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ADAPTERS = "adapters"
LEASES = ".leases"
EVICTED_PREFIX = ".evicted-"
DEFAULT_MAX_BYTES = 20 * 2**30
MIN_AGE_S = 600.0
LEASE_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class AdapterEntry:
    version: str
    path: Path
    bytes: int
    last_used: float  # epoch seconds


@dataclass
class PrunePlan:
    """What pruning found (``total_bytes``), what it removes (``remove``, oldest first) and what it kept
    that it would otherwise have removed (``in_use``, ``recent``)."""

    root: Path
    max_bytes: int | None
    total_bytes: int
    remove: list[AdapterEntry] = field(default_factory=list)
    in_use: list[AdapterEntry] = field(default_factory=list)
    recent: list[AdapterEntry] = field(default_factory=list)
    removed: list[AdapterEntry] = field(default_factory=list)  # filled when the plan is carried out

    @property
    def after_bytes(self) -> int:
        return self.total_bytes - sum(entry.bytes for entry in self.remove)

    @property
    def over(self) -> bool:
        """Still over the bound once ``remove`` is gone (what is left is in use, recent, or bases)."""
        return self.max_bytes is not None and self.after_bytes > self.max_bytes


def _files(directory: Path) -> Iterable[os.stat_result]:
    for dirpath, dirnames, filenames in os.walk(directory):
        if Path(dirpath) == directory:
            dirnames[:] = [d for d in dirnames if d != LEASES]
        for name in filenames:
            try:
                stat = os.lstat(os.path.join(dirpath, name))
            except OSError:  # removed while we walked
                continue
            if not os.path.islink(os.path.join(dirpath, name)):
                yield stat


def tree_bytes(directory: str | Path) -> int:
    """Bytes of the regular files under ``directory``, each file (inode) once; leases are not counted."""
    seen, total = set(), 0
    for stat in _files(Path(directory)):
        key = (stat.st_dev, stat.st_ino)
        if key not in seen:
            seen.add(key)
            total += stat.st_size
    return total


def adapter_entries(root: str | Path) -> list[AdapterEntry]:
    """Published adapters, least recently used first (staging and half-removed directories are skipped)."""
    from .model_store import ID_PATTERN

    entries = []
    parent = Path(root) / ADAPTERS
    for path in parent.iterdir() if parent.is_dir() else ():
        if not ID_PATTERN.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
            continue
        try:
            last_used = path.stat().st_mtime
        except OSError:
            continue
        entries.append(AdapterEntry(version=path.name, path=path, bytes=tree_bytes(path), last_used=last_used))
    return sorted(entries, key=lambda entry: (entry.last_used, entry.version))


def plan(root: str | Path, *, max_bytes: int | None, in_use: Iterable[str] = (), min_age_s: float = MIN_AGE_S,
         now: float | None = None) -> PrunePlan:
    """What pruning ``root`` to ``max_bytes`` (None or 0: no bound) removes; nothing is touched."""
    root = Path(root)
    now = time.time() if now is None else now
    max_bytes = max_bytes or None
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be a number of bytes >= 0 (0: no bound), not {max_bytes}")
    result = PrunePlan(root=root, max_bytes=max_bytes, total_bytes=tree_bytes(root))
    if max_bytes is None or result.total_bytes <= max_bytes:
        return result
    protected = set(in_use)
    for entry in adapter_entries(root):
        if result.after_bytes <= max_bytes:
            break
        if entry.version in protected:
            result.in_use.append(entry)
        elif now - entry.last_used < min_age_s:
            result.recent.append(entry)
        else:
            result.remove.append(entry)
    return result


def carry_out(result: PrunePlan) -> PrunePlan:
    """Remove the plan's adapters. Each directory is first renamed aside (so a loader sees it whole or not
    at all), then deleted; leftovers of an earlier interrupted removal are deleted too."""
    parent = result.root / ADAPTERS
    for leftover in parent.glob(EVICTED_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for entry in result.remove:
        aside = parent / f"{EVICTED_PREFIX}{entry.version}-{uuid.uuid4().hex[:8]}"
        try:
            entry.path.rename(aside)
        except FileNotFoundError:  # another pruner (a server sharing the root) was first
            continue
        shutil.rmtree(aside, ignore_errors=True)
        result.removed.append(entry)
    return result


# ---------------------------------------------------------------------- leases


def lease_path(root: str | Path, instance: str) -> Path:
    return Path(root) / LEASES / f"{instance}.json"


def lease_write(root: str | Path, instance: str, versions: Iterable[str]) -> None:
    """Say (atomically) which adapter versions the server ``instance`` holds."""
    path = lease_path(root, instance)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    staging.write_text(json.dumps({"instance": instance, "versions": sorted(set(versions))}), encoding="utf-8")
    staging.replace(path)


def lease_remove(root: str | Path, instance: str) -> None:
    lease_path(root, instance).unlink(missing_ok=True)


def leased_versions(root: str | Path, *, now: float | None = None, ttl_s: float = LEASE_TTL_S) -> set[str]:
    """Every adapter version a live lease under ``root`` names. An unreadable lease protects nothing but
    is not an error (a half-written one cannot exist: leases are renamed into place)."""
    now = time.time() if now is None else now
    versions: set[str] = set()
    directory = Path(root) / LEASES
    for path in directory.glob("*.json") if directory.is_dir() else ():
        try:
            if now - path.stat().st_mtime > ttl_s:
                continue
            names = json.loads(path.read_text(encoding="utf-8")).get("versions") or []
        except (OSError, ValueError, AttributeError):
            continue
        versions.update(str(name) for name in names)
    return versions


def format_bytes(count: int | None) -> str:
    if count is None:
        return "no bound"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


__all__ = ["DEFAULT_MAX_BYTES", "LEASE_TTL_S", "MIN_AGE_S", "AdapterEntry", "PrunePlan", "adapter_entries",
           "carry_out", "format_bytes", "lease_remove", "lease_write", "leased_versions", "plan", "tree_bytes"]
