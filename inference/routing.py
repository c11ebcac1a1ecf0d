"""Routing the web tier's requests over several model servers.

Each server reports what it holds on `GET /v1/health` (bases, adapters, an instance id). `ServerPool`
keeps that view per server, refreshed at most every `health_ttl` seconds, and sends each request to a
healthy server that holds the request's adapter, the one with the fewest requests in flight from this
client first (round robin among equals). A server that cannot take the request (connection refused or
broken, 503 while draining or overloaded, a wrong token) is marked down until its next health check,
and the request goes to the next candidate. A stream is retried only while no token has reached the
caller: once one delta has been yielded, a failure is the caller's error (the answer is never spliced
from two servers). A server that took a request and did not answer in time (`model_server_timeout`) is
marked down too, but that request is not retried: the slow server may still be running it.

One URL is the degenerate case: no health checks, no retries, exactly the single server's behaviour.
No Django import; `inference.client.ModelServerClient` is the public entry point.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .client import GenerationEvents, ModelServerError, ServerConnection

logger = logging.getLogger("inference")

HEALTH_TIMEOUT_S = 2.0


@dataclass
class ServerView:
    """What this client knows of one server."""

    connection: ServerConnection
    healthy: bool = True  # optimistic until a check or a request says otherwise
    checked_at: float | None = None
    bases: dict[str, dict] = field(default_factory=dict)
    adapters: dict[str, dict] = field(default_factory=dict)
    instance: str | None = None
    in_flight: int = 0
    error: str | None = None

    @property
    def url(self) -> str:
        return self.connection.base_url


class ServerPool:
    def __init__(self, connections: list[ServerConnection], *, health_ttl: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.views = [ServerView(connection) for connection in connections]
        self.health_ttl = health_ttl
        self._clock = clock
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @property
    def single(self) -> bool:
        return len(self.views) == 1

    # ------------------------------------------------------------------ health
    def check(self, view: ServerView) -> None:
        try:
            status = view.connection.status(timeout=HEALTH_TIMEOUT_S)
        except ModelServerError as exc:
            self.mark_down(view, exc.message)
            return
        with self._lock:
            view.healthy = status.get("status") == "ok"
            view.error = None if view.healthy else f"server reports {status.get('status')!r}"
            view.bases = dict(status.get("bases") or {})
            view.adapters = dict(status.get("adapters") or {})
            view.instance = status.get("instance")
            view.checked_at = self._clock()

    def refresh(self, *, force: bool = False) -> None:
        now = self._clock()
        for view in self.views:
            if force or view.checked_at is None or now - view.checked_at >= self.health_ttl:
                self.check(view)

    def mark_down(self, view: ServerView, reason: str) -> None:
        with self._lock:
            view.healthy, view.error, view.checked_at = False, reason, self._clock()
        if not self.single:
            logger.warning("model server %s is down for routing: %s", view.url, reason)

    # ------------------------------------------------------------------ choosing
    def candidates(self, adapter: str | None) -> list[ServerView]:
        """Servers to try, best first: healthy holders of the adapter, then the other healthy servers (a
        view may be stale); when every server looks down, all of them (rather than fail without asking)."""
        if self.single:
            return list(self.views)
        self.refresh()
        holders = self._holders(adapter)
        if adapter is not None and not holders:
            self.refresh(force=True)  # a newly loaded adapter, or a server that just came back
            holders = self._holders(adapter)
        healthy = [v for v in self.views if v.healthy]
        primary = holders or healthy or list(self.views)
        turn = next(self._turn) % len(primary)
        ordered = sorted(primary[turn:] + primary[:turn], key=lambda v: v.in_flight)  # round robin among equals
        return ordered + [v for v in healthy if v not in ordered]

    def _holders(self, adapter: str | None) -> list[ServerView]:
        healthy = [v for v in self.views if v.healthy]
        return healthy if adapter is None else [v for v in healthy if adapter in v.adapters]

    # ------------------------------------------------------------------ calling
    def call(self, send: Callable[[ServerConnection], object], *, adapter: str | None):
        """`send` on the best server; on the next one when a server cannot take it."""
        failures = []
        for view in self.candidates(adapter):
            with self._lock:
                view.in_flight += 1
            try:
                return send(view.connection)
            except ModelServerError as exc:
                if not self._try_next(view, exc):
                    raise
                failures.append((view, exc))
            finally:
                with self._lock:
                    view.in_flight -= 1
        raise self._exhausted(failures)

    def stream(self, open_stream: Callable[[ServerConnection], GenerationEvents], *,
               adapter: str | None) -> RoutedGeneration:
        return RoutedGeneration(self, open_stream, adapter)

    def _try_next(self, view: ServerView, exc: ModelServerError) -> bool:
        """Whether a failure on `view` lets the request go to another server (and note what it says)."""
        if self.single:
            return False
        if exc.code == "model_server_timeout":
            # Not retried (the server may still be running it), but the next requests go elsewhere until
            # its next health check answers.
            self.mark_down(view, exc.message)
            return False
        if exc.server_unusable:
            self.mark_down(view, exc.message)
            return True
        if exc.status == 404 and exc.param in ("adapter", "base"):
            with self._lock:
                view.checked_at = None  # its view was stale: re-read it next time
            return True
        return False

    def _exhausted(self, failures: list[tuple[ServerView, ModelServerError]]) -> ModelServerError:
        if len(failures) == 1:
            return failures[0][1]
        last = failures[-1][1]
        tried = "; ".join(f"{view.url}: {exc.message}" for view, exc in failures)
        return ModelServerError(status=last.status, message=f"No model server could answer ({tried}).",
                                type=last.type, param=last.param, code=last.code)

    # ------------------------------------------------------------------ status
    def stats(self, *, timeout: float | None = None) -> dict:
        if self.single:
            return self.views[0].connection.stats(timeout=timeout)
        merged: dict = {"bases": {}, "servers": {}}
        for view in self.views:
            try:
                stats = view.connection.stats(timeout=timeout)
            except ModelServerError as exc:
                merged["servers"][view.url] = {"up": False, "error": exc.message}
                continue
            merged["servers"][view.url] = {"up": True, "bases": sorted(stats.get("bases") or {})}
            where = view.url.split("://", 1)[-1]
            for name, engine in (stats.get("bases") or {}).items():
                merged["bases"][f"{name} @ {where}"] = {**engine, "server": view.url}
        if not any(s["up"] for s in merged["servers"].values()):
            raise ModelServerError(status=503, code="model_server_unavailable",
                                   message="No model server answered: " + "; ".join(
                                       f"{url}: {s['error']}" for url, s in merged["servers"].items()))
        return merged

    def liveness(self, *, timeout: float | None = None) -> dict:
        if self.single:
            return self.views[0].connection.health(timeout=timeout)
        servers = {}
        for view in self.views:
            try:
                servers[view.url] = view.connection.health(timeout=timeout)
            except ModelServerError as exc:
                servers[view.url] = {"status": "down", "error": exc.message}
        up = any(s.get("status") == "ok" for s in servers.values())
        return {"status": "ok" if up else "down", "servers": servers}


class RoutedGeneration:
    """A streamed generation over the pool, with the interface of `client.GenerationEvents`.

    Opening it (the constructor) reaches a server, trying the next one when a server cannot take it; the
    request's own errors (bad parameters, context length) are raised there. `deltas()` moves to the next
    server if the stream breaks before its first delta, and never after."""

    def __init__(self, pool: ServerPool, open_stream: Callable[[ServerConnection], GenerationEvents],
                 adapter: str | None) -> None:
        self._pool, self._open, self._failures = pool, open_stream, []
        self._remaining = iter(pool.candidates(adapter))
        self._view: ServerView | None = None
        self._events: GenerationEvents | None = None
        self._connect()

    @property
    def final(self) -> dict:
        return self._events.final if self._events is not None else {}

    @property
    def server(self) -> str | None:
        """The URL of the server answering now."""
        return None if self._view is None else self._view.url

    def _connect(self) -> None:
        for view in self._remaining:
            try:
                events = self._open(view.connection)
            except ModelServerError as exc:
                if not self._pool._try_next(view, exc):
                    raise
                self._failures.append((view, exc))
                continue
            with self._pool._lock:
                view.in_flight += 1
            self._view, self._events = view, events
            return
        raise self._pool._exhausted(self._failures)

    def _release(self) -> None:
        if self._view is not None:
            with self._pool._lock:
                self._view.in_flight -= 1
            self._view = None

    def deltas(self, *, deadline: float | None = None) -> Iterator[str]:
        """`deadline` bounds the whole stream, a retry on another server included (see
        `GenerationEvents.deltas`)."""
        try:
            while True:
                started = False
                try:
                    for delta in self._events.deltas(deadline=deadline):
                        started = True
                        yield delta
                    return
                except ModelServerError as exc:
                    if started or not self._pool._try_next(self._view, exc):
                        raise
                    logger.warning("stream from %s failed before its first token; retrying elsewhere",
                                   self._view.url)
                    self._failures.append((self._view, exc))
                    self._events.close()
                    self._release()
                    self._connect()
        finally:
            self._release()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self._release()
