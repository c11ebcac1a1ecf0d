"""Three-tier adapter cache: device slots, host memory, disk (the peft files).

- Disk: adapters are *registered* (name, directory, sha256); nothing is read until first use.
- Host: a background loader thread reads, verifies and converts adapters (the slow part: file IO,
  sha256, safetensors parsing) into an LRU bounded by a byte budget, in pinned memory when CUDA is
  present so uploads are asynchronous. Requests for other adapters keep running meanwhile.
- Device: a fixed number of slots in :class:`~.slot_lora.SlotLoraModel`. Installing from host is a
  few small copies (sub-millisecond), so it happens inline on the engine thread when a batch needs
  the adapter. Eviction is LRU among slots that are neither pinned nor locked; a batch locks the
  slots its rows use until the rows complete, so an adapter never disappears under a running row.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from .adapters import AdapterSource, LoadedAdapter, read_adapter
from .errors import AdapterNotFoundError, EngineCapacityError, EngineError
from .slot_lora import SlotLoraModel


@dataclass
class TierCounters:
    """Hits and misses of one cache tier."""

    hits: int = 0
    misses: int = 0


@dataclass(frozen=True)
class AdapterInfo:
    """What the cache knows about one registered adapter (for stats and the admin API)."""

    name: str
    tier: str  # "device", "host", "loading", "disk" or "failed"
    pinned: bool
    slot: int | None
    rank: int | None
    raw_bytes: int | None
    device_bytes: int | None
    requests: int
    error: str | None


class AdapterCache:
    """Places adapters into device slots on demand; thread-safe.

    The engine thread calls :meth:`try_acquire`/:meth:`release` around every batch row; any thread
    may call :meth:`register`, :meth:`prefetch`, :meth:`pin` and :meth:`unload`.
    """

    def __init__(
        self,
        model: SlotLoraModel,
        *,
        host_budget_bytes: int = 256 * 2**20,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.model = model
        self.host_budget_bytes = host_budget_bytes
        self._on_ready = on_ready
        self._pin_memory = model.device.type == "cuda"
        self._lock = threading.RLock()
        self._sources: dict[str, AdapterSource] = {}
        self._host: OrderedDict[str, LoadedAdapter] = OrderedDict()  # LRU order, oldest first
        self._host_bytes = 0
        self._loading: dict[str, Future] = {}
        self._failed: dict[str, EngineError] = {}
        self._slot_of: dict[str, int] = {}
        self._device_lru: OrderedDict[str, None] = OrderedDict()
        self._owner: list[str | None] = [None] * (model.num_slots + 1)
        self._locks = [0] * (model.num_slots + 1)
        self._device_meta: dict[str, tuple[int, int]] = {}  # name -> (rank, raw_bytes) while on device
        self._pinned: set[str] = set()
        self._pending_unload: set[str] = set()
        self._requests: Counter[str] = Counter()
        self.device_counters = TierCounters()
        self.host_counters = TierCounters()
        self.disk_loads = 0
        self.last_load_ms: dict[str, float] = {}  # "host_to_device" / "disk_to_host" timings
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-loader")

    # ------------------------------------------------------------------ registry
    def register(self, name: str, path: str | Path, sha256: str) -> None:
        """Make an adapter known (disk tier). Re-registering a name with new files replaces it."""
        source = AdapterSource(name=name, path=Path(path), sha256=sha256.lower())
        with self._lock:
            old = self._sources.get(name)
            if old == source:
                return
            if old is not None:
                self._drop(name)
            self._sources[name] = source
            self._failed.pop(name, None)

    def is_registered(self, name: str) -> bool:
        with self._lock:
            return name in self._sources

    def record_request(self, name: str) -> None:
        with self._lock:
            if name not in self._sources:
                raise AdapterNotFoundError(f"adapter {name!r} is not loaded", param="adapter")
            self._requests[name] += 1

    def prefetch(self, name: str) -> Future:
        """Start reading ``name`` into host memory unless it is already there; never blocks.

        The returned future completes when the adapter is in host memory (or on device), and carries
        the load error if there is one.
        """
        with self._lock:
            if name not in self._sources:
                raise AdapterNotFoundError(f"adapter {name!r} is not loaded", param="adapter")
            if name in self._failed:
                future: Future = Future()
                future.set_exception(self._failed[name])
                return future
            if name in self._slot_of or name in self._host:
                future = Future()
                future.set_result(None)
                return future
            if name not in self._loading:
                self.host_counters.misses += 1
                self._loading[name] = self._loader.submit(self._load_from_disk, self._sources[name])
            return self._loading[name]

    def _load_from_disk(self, source: AdapterSource) -> None:
        started = time.perf_counter()
        try:
            loaded = read_adapter(source, self.model, pin_memory=self._pin_memory)
        except EngineError as exc:
            with self._lock:
                if self._sources.get(source.name) == source:
                    self._failed[source.name] = exc
                self._loading.pop(source.name, None)
            self._notify()
            raise
        with self._lock:
            self._loading.pop(source.name, None)
            if self._sources.get(source.name) != source:
                return  # unloaded or replaced while reading: drop the stale copy
            self.disk_loads += 1
            self.last_load_ms["disk_to_host"] = (time.perf_counter() - started) * 1e3
            self._host_put(loaded)
        self._notify()

    def _notify(self) -> None:
        if self._on_ready is not None:
            self._on_ready()

    def _host_put(self, loaded: LoadedAdapter) -> None:
        self._host[loaded.name] = loaded
        self._host.move_to_end(loaded.name)
        self._host_bytes += loaded.tensors.nbytes()
        # Keep at least the newest entry even if it alone exceeds the budget: it is about to be used.
        while self._host_bytes > self.host_budget_bytes and len(self._host) > 1:
            _, evicted = self._host.popitem(last=False)
            self._host_bytes -= evicted.tensors.nbytes()

    # ------------------------------------------------------------------ device slots
    def try_acquire(self, name: str) -> int | None:
        """Lock a device slot holding ``name`` for one batch row, installing it if needed.

        Returns the slot, or ``None`` when the adapter is still loading or every slot is locked or
        pinned (the caller retries on a later step). Raises the load error if loading failed.
        """
        with self._lock:
            if name not in self._sources:
                raise AdapterNotFoundError(f"adapter {name!r} is not loaded", param="adapter")
            if name in self._pending_unload:
                raise AdapterNotFoundError(f"adapter {name!r} is being unloaded", param="adapter")
            slot = self._slot_of.get(name)
            if slot is not None:
                self.device_counters.hits += 1
                self._device_lru.move_to_end(name)
            else:
                slot = self._install(name)
                if slot is None:
                    return None
            self._locks[slot] += 1
            return slot

    def _install(self, name: str) -> int | None:
        if name in self._failed:
            raise self._failed[name]
        loaded = self._host.get(name)
        if loaded is None:
            self.prefetch(name)
            return None
        rank = loaded.tensors.rank
        if rank > self.model.free_pages + self._evictable_pages() or not self._make_room(rank):
            return None
        self.device_counters.misses += 1
        self.host_counters.hits += 1
        self._host.move_to_end(name)
        slot = self._owner.index(None, 1)
        started = time.perf_counter()
        self.model.install(slot, loaded.tensors)
        if self.model.device.type == "cuda":
            torch.cuda.current_stream().synchronize()
        self.last_load_ms["host_to_device"] = (time.perf_counter() - started) * 1e3
        self._owner[slot] = name
        self._slot_of[name] = slot
        self._device_lru[name] = None
        self._device_meta[name] = (rank, loaded.raw_bytes)
        return slot

    def _evictable(self) -> list[str]:
        return [n for n in self._device_lru if n not in self._pinned and self._locks[self._slot_of[n]] == 0]

    def _evictable_pages(self) -> int:
        return sum(self.model.slot_rank[self._slot_of[n]] for n in self._evictable())

    def _make_room(self, rank: int) -> bool:
        """Evict LRU unlocked, unpinned adapters until a slot and ``rank`` pages are free."""
        candidates = self._evictable()
        while (None not in self._owner[1:] or self.model.free_pages < rank) and candidates:
            self._evict_from_device(candidates.pop(0))
        return None in self._owner[1:] and self.model.free_pages >= rank

    def _evict_from_device(self, name: str) -> None:
        slot = self._slot_of.pop(name)
        self._device_lru.pop(name)
        self._device_meta.pop(name)
        self._owner[slot] = None
        self.model.clear(slot)

    def release(self, slot: int) -> None:
        """Unlock one row's hold on ``slot`` (slot 0, the base model, is never locked)."""
        if slot == 0:
            return
        with self._lock:
            self._locks[slot] -= 1
            name = self._owner[slot]
            if self._locks[slot] == 0 and name in self._pending_unload:
                self._pending_unload.discard(name)
                self._evict_from_device(name)

    # ------------------------------------------------------------------ admin
    def pin(self, name: str, pinned: bool = True, timeout: float | None = 30.0) -> int | None:
        """Pin ``name`` on device (loading it now if needed) or unpin it; returns its slot.

        Pinned adapters are never evicted; pinning fails with :class:`EngineCapacityError` when every
        slot is pinned or locked by running rows.
        """
        if not pinned:
            with self._lock:
                if name not in self._sources:
                    raise AdapterNotFoundError(f"adapter {name!r} is not loaded", param="adapter")
                self._pinned.discard(name)
                return self._slot_of.get(name)
        self.prefetch(name).result(timeout=timeout)
        with self._lock:
            slot = self._slot_of.get(name)
            if slot is None:
                slot = self._install(name)
            if slot is None:
                raise EngineCapacityError(f"no free device slot to pin adapter {name!r}")
            self._pinned.add(name)
            return slot

    def unload(self, name: str) -> None:
        """Forget ``name`` in every tier. Rows already running finish with the adapter first."""
        with self._lock:
            if name not in self._sources:
                raise AdapterNotFoundError(f"adapter {name!r} is not loaded", param="adapter")
            self._drop(name)

    def _drop(self, name: str) -> None:
        self._sources.pop(name, None)
        self._failed.pop(name, None)
        self._pinned.discard(name)
        loaded = self._host.pop(name, None)
        if loaded is not None:
            self._host_bytes -= loaded.tensors.nbytes()
        slot = self._slot_of.get(name)
        if slot is not None:
            if self._locks[slot]:
                self._pending_unload.add(name)
            else:
                self._evict_from_device(name)

    def close(self) -> None:
        self._loader.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ stats
    def info(self, name: str) -> AdapterInfo:
        with self._lock:
            if name not in self._sources and name not in self._slot_of:
                raise AdapterNotFoundError(f"adapter {name!r} is not loaded", param="adapter")
            slot = self._slot_of.get(name)
            host = self._host.get(name)
            rank, raw = self._device_meta.get(name, (None, None))
            if host is not None:
                rank, raw = host.tensors.rank, host.raw_bytes
            if slot is not None:
                tier = "device"
            elif host is not None:
                tier = "host"
            elif name in self._loading:
                tier = "loading"
            elif name in self._failed:
                tier = "failed"
            else:
                tier = "disk"
            failure = self._failed.get(name)
            return AdapterInfo(
                name=name,
                tier=tier,
                pinned=name in self._pinned,
                slot=slot,
                rank=rank,
                raw_bytes=raw,
                device_bytes=None if slot is None else self.model.slot_device_bytes(slot),
                requests=self._requests[name],
                error=None if failure is None else failure.message,
            )

    def stats(self) -> dict:
        """Counters per tier, occupancy and per-adapter details, JSON-serialisable."""
        with self._lock:
            names = list(self._sources)
            summary = {
                "device": {
                    **vars(self.device_counters),
                    "slots": self.model.num_slots,
                    "slots_used": len(self._slot_of),
                    "pages_total": self.model.num_pages - 1,
                    "pages_free": self.model.free_pages,
                    "locked_slots": sum(1 for c in self._locks if c),
                },
                "host": {**vars(self.host_counters), "bytes": self._host_bytes, "budget_bytes": self.host_budget_bytes,
                         "adapters": len(self._host)},
                "disk": {"registered": len(names), "loads": self.disk_loads, "loading": len(self._loading)},
                "last_load_ms": dict(self.last_load_ms),
            }
        summary["adapters"] = {name: vars(self.info(name)) for name in names}
        return summary

