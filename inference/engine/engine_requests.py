"""The requests a serving engine holds while they wait and run.

:class:`GenerationStream` is the caller's handle of one generation (iterate it for text deltas, or wait
for its result; cancel it on disconnect); ``_ClassifyRequest`` and ``_GenerateRequest`` are the engine's
records of a queued or running request (its adapter slot, prompt, sampler and progress), failed through
their ``fail`` method. Importable from :mod:`.engine` and the package as before.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from .engine_types import GenerationResult
from .errors import EngineError
from .generation import GenerationParams, TextTracker, TokenSampler

_DONE = object()


class GenerationStream:
    """Handle of one generation request: iterate it for text deltas, or call :meth:`result`.

    Concatenating the deltas gives exactly ``result().text``. :meth:`cancel` (e.g. on client
    disconnect) retires the row at the next step and releases its adapter slot.
    """

    def __init__(self, pump: Callable[[], bool]) -> None:
        """``pump`` runs an engine step from the caller's thread (when no loop thread runs) and
        returns whether it did anything; waiting callers otherwise block briefly."""
        self._deltas: queue.SimpleQueue = queue.SimpleQueue()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._result: GenerationResult | None = None
        self._error: EngineError | None = None
        self._pump = pump

    # engine side
    def _push(self, delta: str) -> None:
        if delta:
            self._deltas.put(delta)

    def _finish(self, result: GenerationResult | None, error: EngineError | None = None) -> None:
        self._result, self._error = result, error
        self._done.set()
        self._deltas.put(_DONE)

    # caller side
    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def __iter__(self) -> Iterator[str]:
        while True:
            try:
                item = self._deltas.get_nowait()
            except queue.Empty:
                if self._pump():
                    continue
                try:
                    item = self._deltas.get(timeout=0.01)
                except queue.Empty:
                    continue
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def result(self, timeout: float | None = None) -> GenerationResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("generation did not finish in time")
            if not self._pump():
                self._done.wait(0.01)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


@dataclass(eq=False)
class _Request:
    seq: int
    adapter: str | None
    slot: int | None = None


@dataclass(eq=False)
class _ClassifyRequest(_Request):
    input_ids: list[int] = field(default_factory=list)
    future: Future = field(default_factory=Future)

    @property
    def cancelled(self) -> bool:
        return self.future.cancelled()

    def fail(self, error: EngineError) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(eq=False)
class _GenerateRequest(_Request):
    prompt_ids: list[int] = field(default_factory=list)
    params: GenerationParams = field(default_factory=GenerationParams)
    sampler: TokenSampler | None = None
    tracker: TextTracker | None = None
    stream: GenerationStream | None = None
    next_token: int = 0  # sampled but not yet fed to the model
    generated_ids: list[int] = field(default_factory=list)
    position: int = 0  # position id of next_token
    completion_tokens: int = 0
    finish_reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.stream.cancelled

    def fail(self, error: EngineError) -> None:
        self.stream._finish(None, error)
