"""Keeping model servers' adapters in step with the deployed model versions.

`DeploymentSync(client).sync()` keeps one server in step: it reads what the server holds
(`/v1/health`), makes sure it has an engine for each deployed version's base model (one engine per base
model and task, its classifier head padded to `INFERENCE_NUM_LABELS`), loads newly deployed adapters with
their digest and unloads undeployed ones. `FleetSync` does it for several servers: each base is placed on
`INFERENCE_BASE_REPLICAS` healthy servers (0: all of them), and each adapter is loaded on the servers
holding its base, so a server that joins (or comes back empty after a restart: its instance id changed)
is filled, and the bases of one that left are placed on the others. `serve_models` calls one of them
every `INFERENCE_POLL_S` seconds.

Servers load by id, never by path (`inference.engine.model_store`): before asking for a load, the sync
publishes the files into the server's model root (the path the server reports; the poller must see it at
the same path: one machine, or a shared volume). A version's files are first checked against the sha256
of each file recorded in its training manifest in the database; the adapter digest the engine then
verifies on every disk read is computed from those checked files, so files swapped on disk after
registration are refused.
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
    version_hash: str  # the id the adapter is published and loaded under
    base: str  # the engine's name on a server: "<base model slug>:<task>"
    base_slug: str
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
            base_slug=version.base_model.slug, base_path=str(base_path), task=engine_task(version),
            path=str(directory), sha256=sha, labels=tuple(version.label_names or ()) if is_classifier(version) else (),
        )
    return desired


def engine_defaults() -> dict:
    """Engine options from settings: what every model server (the command, the demo's in-process one)
    and every base it loads start from."""
    return {"num_slots": settings.INFERENCE_SLOTS, "max_rank": settings.INFERENCE_MAX_RANK,
            "max_batch_rows": settings.INFERENCE_MAX_BATCH_ROWS}


class DeploymentSync:
    """Keeps one server (`client` for one URL) in step with the deployed versions."""

    def __init__(self, client: ModelServerClient) -> None:
        self.client = client
        self.loaded: dict[str, tuple[str, str | None]] = {}  # adapter -> (base, sha256)
        self.bases: set[str] = set()
        self.instance: str | None = None
        self.model_root: Path | None = None
        self._base_ids: dict[str, str] = {}  # base path -> published id

    def refresh(self) -> dict:
        """Read what the server holds. A new instance id means the process restarted: start from its word."""
        status = self.client.status()
        if status.get("instance") != self.instance:
            self.instance = status.get("instance")
            self.bases = set(status.get("bases") or {})
            self.loaded = {name: (meta.get("base"), meta.get("sha256"))
                           for name, meta in (status.get("adapters") or {}).items()}
        self.model_root = Path(status["model_root"]) if status.get("model_root") else None
        return status

    def _publish(self, publish, ident: str, source: str) -> str | None:
        """Put files into the server's model root; the reason when that is impossible from here."""
        if self.model_root is None or not self.model_root.is_dir():
            return f"the server's model root {self.model_root} is not on this machine"
        try:
            publish(self.model_root, ident, source)
        except OSError as exc:
            return f"cannot publish into the server's model root {self.model_root}: {exc}"
        return None

    def _ensure_base(self, adapter: DesiredAdapter) -> None:
        if adapter.base in self.bases:
            return
        from inference.engine.model_store import base_model_id, publish_base

        if adapter.base_path not in self._base_ids:
            self._base_ids[adapter.base_path] = base_model_id(adapter.base_slug, adapter.base_path)
        model_id = self._base_ids[adapter.base_path]
        problem = self._publish(publish_base, model_id, adapter.base_path)
        options = engine_defaults()
        if adapter.task == "classification":
            options["num_labels"] = max(settings.INFERENCE_NUM_LABELS, len(adapter.labels))
        try:
            self.client.load_base(name=adapter.base, model=model_id, task=adapter.task, **options)
        except ModelServerError as exc:
            if problem:
                exc.message = f"{exc.message} ({problem})"
            raise
        self.bases.add(adapter.base)

    def _load(self, name: str, adapter: DesiredAdapter) -> None:
        from inference.engine.model_store import publish_adapter

        self._ensure_base(adapter)
        if name in self.loaded and self.loaded[name][0] != adapter.base:
            self.client.unload_adapter(name=name)
        problem = self._publish(publish_adapter, adapter.version_hash, adapter.path)
        try:
            self.client.load_adapter(name=name, version=adapter.version_hash, sha256=adapter.sha256,
                                     base=adapter.base, labels=adapter.labels or None)
        except ModelServerError as exc:
            if problem:
                exc.message = f"{exc.message} ({problem})"
            raise

    def sync(self, desired: dict[str, DesiredAdapter] | None = None, report: SyncReport | None = None, *,
             refreshed: bool = False) -> SyncReport:
        """Make the server hold exactly `desired` (default: every deployed version). `refreshed`: the
        caller has just called `refresh()`."""
        report = report or SyncReport()
        if not refreshed:
            self.refresh()
        if desired is None:
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
                self._load(name, adapter)
            except ModelServerError as exc:
                logger.warning("model server %s refused %s: %s", self.client.base_url, name, exc.message)
                report.failed[name] = exc.message
                continue
            self.loaded[name] = (adapter.base, adapter.sha256)
            report.loaded.append(name)
        report.bases = sorted(self.bases)
        return report


@dataclass
class FleetReport:
    servers: dict[str, SyncReport] = field(default_factory=dict)  # per healthy server
    down: dict[str, str] = field(default_factory=dict)  # url -> why it was skipped
    placement: dict[str, list[str]] = field(default_factory=dict)  # base -> servers holding it after the sync
    failed: dict[str, str] = field(default_factory=dict)  # versions that cannot be served anywhere


class FleetSync:
    """Keeps several servers in step: places bases, loads each adapter where its base is."""

    def __init__(self, clients: list[ModelServerClient], *, replicas: int = 0) -> None:
        self.syncs = {client.base_url: DeploymentSync(client) for client in clients}
        self.replicas = replicas

    def sync(self) -> FleetReport:
        report = FleetReport()
        healthy: dict[str, set[str]] = {}  # url -> bases it holds
        for url, server in self.syncs.items():
            try:
                status = server.refresh()
            except ModelServerError as exc:
                report.down[url] = exc.message
                continue
            if status.get("status") != "ok":
                report.down[url] = f"server reports {status.get('status')!r}"
                continue
            healthy[url] = set(server.bases)
        failures = SyncReport()
        desired = desired_adapters(failures)
        report.failed = dict(failures.failed)
        placement = self.place({a.base for a in desired.values()}, healthy)
        for url in healthy:
            mine = {name: a for name, a in desired.items() if url in placement.get(a.base, ())}
            report.servers[url] = self.syncs[url].sync(mine, SyncReport(failed=dict(failures.failed)),
                                                        refreshed=True)
        report.placement = {base: sorted(u for u in urls if u in healthy and base in self.syncs[u].bases)
                            for base, urls in placement.items()}
        return report

    def place(self, bases: set[str], holding: dict[str, set[str]]) -> dict[str, list[str]]:
        """Which servers should hold each base: those that already do, topped up to the replica count by
        the servers with the fewest bases (placements made here count, so bases spread out)."""
        load = {url: len(held) for url, held in holding.items()}
        placement = {}
        for base in sorted(bases):
            chosen = [url for url, held in holding.items() if base in held]
            want = len(holding) if self.replicas <= 0 else min(self.replicas, len(holding))
            for url in sorted((u for u in holding if u not in chosen), key=lambda u: (load[u], u)):
                if len(chosen) >= want:
                    break
                chosen.append(url)
                load[url] += 1
            placement[base] = chosen
        return placement
