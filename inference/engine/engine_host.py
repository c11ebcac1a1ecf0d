"""What one model-server process holds: its engines (one per base model) and the adapters on them.

:class:`EngineHost` is the HTTP layer's only way to the engines. Requests are routed by ``base`` when
given, else to the engine on which the named adapter is registered, else to the only engine (or the
first of the request's task). Bases and adapters are loaded by id from the :class:`~.model_store.ModelStore`
(never from a path a caller sends). :meth:`EngineHost.health` is what the web tier routes by: the bases
and adapters held, and an ``instance`` id that changes when the process restarts (so the deployment
poller knows a server came back empty).

A bounded store (``ModelStore(root, max_bytes=...)``) is pruned after each adapter load: least recently
used adapters go, never one this host holds, one being loaded, or one another server's lease names
(:mod:`.pruning`); the host keeps its own lease current. It also embeds texts for the web tier's searches
(:meth:`EngineHost.embed`, the bundled MiniLM of :mod:`.embeddings`, loaded once on first use). Plain Python,
no Django.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import torch

from . import pruning
from .embeddings import Embedders
from .engine import ServingEngine, Task
from .errors import AdapterNotFoundError, EngineCapacityError, InvalidRequestError
from .model_store import ModelStore

logger = logging.getLogger("inference.engine.server")

DEFAULT_BASE = "default"
LEASE_REFRESH_S = 60.0


class EngineHost:
    """``engines`` is ``{base name: engine}`` (may be empty: bases are then loaded over HTTP)."""

    def __init__(
        self, engines: dict[str, ServingEngine] | None = None, *, store: ModelStore, device: str | None = None,
        dtype: torch.dtype | None = None, engine_defaults: dict | None = None,
    ) -> None:
        self.engines: dict[str, ServingEngine] = dict(engines or {})
        self.base_info: dict[str, dict] = {name: {"path": None, "model": None, "task": e.task.value}
                                           for name, e in self.engines.items()}
        self.adapters: dict[str, dict] = {}  # name -> {"base", "version", "sha256"}
        self.store = store
        self.device, self.dtype = device, dtype
        self.engine_defaults = dict(engine_defaults or {})
        self.instance = uuid.uuid4().hex
        self.draining = False
        self._lock = threading.Lock()
        self._lease_written = 0.0
        self.embedders = Embedders(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def engine(self) -> ServingEngine | None:
        """The first engine (the only one for a single-base server)."""
        return next(iter(self.engines.values()), None)

    # ------------------------------------------------------------------ bases
    def add_engine(self, name: str, engine: ServingEngine, *, path: str | None = None,
                   model: str | None = None) -> ServingEngine:
        """Register (and start) an engine as base ``name``; an existing one of that name is kept."""
        with self._lock:
            if name in self.engines:
                return self.engines[name]
            engine.start()
            self.engines = {**self.engines, name: engine}
            self.base_info[name] = {"path": path, "model": model, "task": engine.task.value}
            return engine

    def load_base(self, name: str, model: str, task: str, **config: object) -> ServingEngine:
        """Load the published base ``model`` into a new engine named ``name`` (idempotent by name)."""
        existing = self.engines.get(name)
        if existing is not None:
            return existing
        path = self.store.base_dir(model)
        options = {**self.engine_defaults, **{k: v for k, v in config.items() if v is not None}}
        try:
            engine = ServingEngine.from_pretrained(path, task, device=self.device, dtype=self.dtype, **options)
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"base {name!r} could not be loaded from model {model!r}: {exc}",
                                      param="model") from exc
        kept = self.add_engine(name, engine, path=str(path), model=model)
        if kept is not engine:
            engine.close()
        return kept

    def unload_base(self, name: str) -> None:
        with self._lock:
            engine = self.engines.get(name)
            if engine is None:
                raise AdapterNotFoundError(f"base {name!r} is not loaded", param="base")
            self.engines = {k: v for k, v in self.engines.items() if k != name}
            self.base_info.pop(name, None)
            dropped = [v["version"] for v in self.adapters.values() if v["base"] == name]
            self.adapters = {k: v for k, v in self.adapters.items() if v["base"] != name}
        engine.close()
        for version in dropped:
            self.store.touch_adapter(version)  # last used now: unloading is not a reason to go first
        self._write_lease()

    def base_name(self, engine: ServingEngine) -> str | None:
        return next((name for name, e in self.engines.items() if e is engine), None)

    def route(self, *, base: str | None, adapter: str | None, task: Task | None = None) -> ServingEngine:
        engines = self.engines
        if base is not None:
            if base not in engines:
                raise AdapterNotFoundError(f"base {base!r} is not loaded", param="base")
            return engines[base]
        if adapter is not None:
            for engine in engines.values():
                if engine.has_adapter(adapter):
                    return engine
            raise AdapterNotFoundError(f"adapter {adapter!r} is not loaded", param="adapter")
        candidates = [e for e in engines.values() if task is None or e.task is task] or list(engines.values())
        if not candidates:
            raise EngineCapacityError("no base model is loaded")
        return candidates[0]

    # ------------------------------------------------------------------ adapters
    def load_adapter(self, name: str, *, version: str, sha256: str, base: str | None,
                     labels: list[str] | None, pin: bool, wait: bool) -> dict:
        if base is None:
            if len(self.engines) > 1:
                raise InvalidRequestError("several bases are loaded: name the adapter's base", param="base")
            engine = self.route(base=None, adapter=None)
        else:
            engine = self.route(base=base, adapter=None)
        for other_name, other in self.engines.items():
            if other is not engine and other.has_adapter(name):
                raise InvalidRequestError(f"adapter {name!r} is already loaded on base {other_name!r}", param="name")
        with self.store.holding_adapter(version) as path:  # never pruned while it loads
            info = engine.load_adapter(name, path, sha256, wait=wait, pin=pin, labels=labels)
            base_name = self.base_name(engine)
            with self._lock:
                self.adapters[name] = {"base": base_name, "version": version, "sha256": sha256.lower()}
        self._write_lease()
        self.prune_model_root()
        return {**vars(info), "base": base_name, "version": version}

    def unload_adapter(self, name: str, *, base: str | None) -> None:
        self.route(base=base, adapter=name).unload_adapter(name)
        with self._lock:
            meta = self.adapters.pop(name, None)
        if meta is not None:
            self.store.touch_adapter(meta["version"])
        self._write_lease()

    # ------------------------------------------------------------------ embeddings
    def embed(self, texts: list[str], model: str):
        """``(vectors, model identity, tokens read)`` of ``texts`` (see :meth:`.embeddings.Embedders.embed`)."""
        return self.embedders.embed(texts, model)

    # ------------------------------------------------------------------ the model root's bound
    def versions_in_use(self) -> set[str]:
        with self._lock:
            return {meta["version"] for meta in self.adapters.values()}

    def prune_model_root(self, *, dry_run: bool = False) -> pruning.PrunePlan | None:
        """Keep a bounded store's root under its bound (None when the store has no bound). A failure to
        remove is logged, never raised: the load that triggered it has succeeded."""
        if self.store.max_bytes is None:
            return None
        try:
            result = self.store.prune(in_use=self.versions_in_use, dry_run=dry_run)
        except OSError:
            logger.exception("pruning the model root %s failed", self.store.root)
            return None
        for entry in result.removed:
            logger.info("model root over %s: removed adapter %s (%s)", pruning.format_bytes(result.max_bytes),
                        entry.version, pruning.format_bytes(entry.bytes))
        if result.over:
            logger.warning("model root %s holds %s, over its bound of %s: what is left is in use, recent or bases",
                           self.store.root, pruning.format_bytes(result.after_bytes),
                           pruning.format_bytes(result.max_bytes))
        return result

    def _write_lease(self) -> None:
        self._lease_written = time.monotonic()  # a failure is retried at the next refresh, not at every read
        try:
            pruning.lease_write(self.store.root, self.instance, self.versions_in_use())
        except OSError as exc:  # a read-only root: nothing is pruned there either
            logger.warning("cannot write this server's lease under %s: %s", self.store.root, exc)

    # ------------------------------------------------------------------ reporting
    def health(self) -> dict:
        """What the router and the deployment poller read: held bases and adapters, and this process's id.
        Reading it keeps this server's lease fresh."""
        if time.monotonic() - self._lease_written >= LEASE_REFRESH_S:
            self._write_lease()
        return {
            "status": "draining" if self.draining else "ok",
            "instance": self.instance,
            "model_root": str(self.store.root),
            "bases": {name: {"task": info["task"], "model": info["model"]} for name, info in self.base_info.items()},
            "adapters": {name: dict(meta) for name, meta in self.adapters.items()},
        }

    def stats(self) -> dict:
        """The first engine's counters at the top level (single-base callers) plus every base's."""
        bases = {name: {**engine.stats(), **self.base_info.get(name, {})} for name, engine in self.engines.items()}
        return {**next(iter(bases.values()), {}), "bases": bases}

    def close_engines(self) -> None:
        for engine in list(self.engines.values()):
            engine.close()
        try:
            pruning.lease_remove(self.store.root, self.instance)
        except OSError:
            pass
