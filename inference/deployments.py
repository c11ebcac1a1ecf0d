"""Keeping a model server's adapters in step with the deployed model versions.

`DeploymentSync.sync()` reads the deployed versions, makes sure the model server has an engine for
each one's base model (one engine per base model and task, its classifier head padded to
`INFERENCE_NUM_LABELS`), loads newly deployed adapters with their digest and unloads undeployed
ones. `serve_models` calls it every `INFERENCE_POLL_S` seconds; it only talks to the model server
over HTTP, so it works against any model server process.

An adapter's files are first checked against the sha256 of each file recorded in the version's
training manifest in the database; the adapter digest the engine then verifies on every disk read is
computed from those checked files, so files swapped on disk after registration are refused.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from models_registry import selectors as registry_selectors
from models_registry import services as registry_services

from .client import ModelServerClient, ModelServerError
from .services import adapter_name, is_classifier

logger = logging.getLogger("inference")

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class AdapterFilesChanged(Exception):
    pass


@dataclass(frozen=True)
class DesiredAdapter:
    name: str
    version_hash: str
    base: str
    base_path: str
    task: str  # engine task: classification or causal_lm
    path: str
    sha256: str
    labels: tuple[str, ...]


@dataclass
class SyncReport:
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bases: list[str] = field(default_factory=list)


def engine_task(version) -> str:
    return "classification" if is_classifier(version) else "causal_lm"


def base_name(version) -> str:
    return f"{version.base_model.slug}:{engine_task(version)}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adapter_digest(*, version, directory: Path) -> str:
    """Check the adapter files against the registry's manifest, then return the engine's digest."""
    from inference.engine import adapter_directory_sha256

    recorded = (version.manifest.get("content") or {}).get("files") or {}
    for name in ADAPTER_FILES:
        expected = recorded.get(name)
        if expected is None or _file_sha256(directory / name) != expected:
            raise AdapterFilesChanged(f"{name} of {version.slug} does not match the registered manifest")
    return adapter_directory_sha256(directory)


def desired_adapters(report: SyncReport | None = None) -> dict[str, DesiredAdapter]:
    from models_registry.training import resolve_model_path

    desired = {}
    for version in registry_selectors.deployed_model_versions():
        try:
            directory = registry_services.model_version_local_dir(version=version)
            sha = adapter_digest(version=version, directory=directory)
            base_path = resolve_model_path(registry_services.base_model_source(version.base_model))
        except Exception as exc:  # noqa: BLE001 - one broken version must not stop the others
            logger.warning("cannot serve %s: %s", version.slug, exc)
            if report is not None:
                report.failed[adapter_name(version)] = str(exc)
            continue
        desired[adapter_name(version)] = DesiredAdapter(
            name=adapter_name(version), version_hash=version.version_hash, base=base_name(version),
            base_path=str(base_path), task=engine_task(version), path=str(directory), sha256=sha,
            labels=tuple(version.label_names or ()) if is_classifier(version) else (),
        )
    return desired


def engine_defaults() -> dict:
    """Engine options from settings: what every model server (the command, the demo's in-process one)
    and every base it loads start from."""
    return {"num_slots": settings.INFERENCE_SLOTS, "max_rank": settings.INFERENCE_MAX_RANK,
            "max_batch_rows": settings.INFERENCE_MAX_BATCH_ROWS}


class DeploymentSync:
    def __init__(self, client: ModelServerClient) -> None:
        self.client = client
        self.loaded: dict[str, tuple[str, str | None]] = {}  # adapter -> (base, sha256 or None if unknown)
        self.bases: set[str] = set()
        self._primed = False

    def _prime(self) -> None:
        """Learn what a (possibly already running) server holds, so stale adapters get unloaded."""
        stats = self.client.stats()
        for base, engine in (stats.get("bases") or {}).items():
            self.bases.add(base)
            for name in (engine.get("cache") or {}).get("adapters", {}):
                self.loaded[name] = (base, None)
        self._primed = True

    def _ensure_base(self, adapter: DesiredAdapter) -> None:
        if adapter.base in self.bases:
            return
        options = engine_defaults()
        if adapter.task == "classification":
            options["num_labels"] = max(settings.INFERENCE_NUM_LABELS, len(adapter.labels))
        self.client.load_base(name=adapter.base, path=adapter.base_path, task=adapter.task, **options)
        self.bases.add(adapter.base)

    def sync(self) -> SyncReport:
        report = SyncReport()
        if not self._primed:
            self._prime()
        desired = desired_adapters(report)
        for name in sorted(set(self.loaded) - set(desired) - set(report.failed)):
            try:
                self.client.unload_adapter(name=name)
            except ModelServerError as exc:
                if exc.status != 404:
                    report.failed[name] = exc.message
                    continue
            self.loaded.pop(name, None)
            report.unloaded.append(name)
        for name, adapter in sorted(desired.items()):
            if self.loaded.get(name) == (adapter.base, adapter.sha256):
                continue
            try:
                self._ensure_base(adapter)
                if name in self.loaded and self.loaded[name][0] != adapter.base:
                    self.client.unload_adapter(name=name)
                self.client.load_adapter(name=name, path=adapter.path, sha256=adapter.sha256, base=adapter.base,
                                         labels=adapter.labels or None)
            except ModelServerError as exc:
                logger.warning("model server refused %s: %s", name, exc.message)
                report.failed[name] = exc.message
                continue
            self.loaded[name] = (adapter.base, adapter.sha256)
            report.loaded.append(name)
        report.bases = sorted(self.bases)
        return report
