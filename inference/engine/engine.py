"""The serving engine: one base model, many LoRA adapters, continuous batching.

Usage::

    engine = ServingEngine.from_pretrained("/models/base", task="causal_lm", num_slots=8)
    engine.load_adapter("acme-v3", "/adapters/acme-v3", sha256="...")
    with engine:                        # starts the step loop thread
        result = engine.generate("Hello", adapter="acme-v3", params=GenerationParams(max_tokens=20))
        for delta in engine.stream("Hello", adapter="acme-v3"):
            print(delta, end="")

Without ``start()`` (or the ``with`` block), the blocking calls drive :meth:`ServingEngine.step`
themselves; tests use that, and :meth:`step` directly, for deterministic interleavings.

Each step admits queued requests fairly (see :mod:`.scheduler`), runs at most one prefill forward
for the requests that join and one decode forward for every running row, then retires finished rows
and releases their adapter slots. Rows of different adapters share every forward.

The engine's types are in :mod:`.engine_types`, the request handles in :mod:`.engine_requests` and the
forward passes of a step in :mod:`.batching`; every public name is still importable from here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path

import torch
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, DynamicCache

from .batching import BatchedForwards
from .cache import AdapterCache, AdapterInfo
from .chat import render_chat
from .engine_requests import GenerationStream, _ClassifyRequest, _GenerateRequest, _Request
from .engine_types import (
    DEFAULT_HEAD_MODULES,  # noqa: F401 - importable from here, as before the split
    ClassificationResult,
    EngineConfig,
    GenerationResult,
    Task,
)
from .errors import (
    AdapterIncompatibleError,
    ContextLengthExceededError,
    EngineCapacityError,
    EngineError,
    InvalidRequestError,
    RequestCancelledError,
)
from .generation import GenerationParams, TextTracker, TokenSampler
from .scheduler import Admission, select_admissions
from .slot_lora import SlotLoraModel


class ServingEngine(BatchedForwards):
    """Serves classification or generation requests for many LoRA adapters on one base model."""

    def __init__(self, model: torch.nn.Module, tokenizer, config: EngineConfig) -> None:
        """Wrap an already loaded base model (it is modified in place: target Linears become
        :class:`~.slot_lora.SlotLoraLinear`)."""
        self.config = config
        self.task = Task(config.task)
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        targets = config.target_modules or tuple(
            TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model.config.model_type, ())
        )
        if not targets:
            raise ValueError(f"no default LoRA targets for model_type {model.config.model_type!r}; pass target_modules")
        heads = config.head_modules if self.task is Task.CLASSIFICATION else ()
        self.slots = SlotLoraModel(
            model, targets, heads, num_slots=config.num_slots, max_rank=config.max_rank, num_pages=config.num_pages
        )
        self.device = self.slots.device
        self._wakeup = threading.Condition()
        self.cache = AdapterCache(self.slots, host_budget_bytes=config.host_cache_bytes, on_ready=self._notify)
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = pad if pad is not None else 0
        eos = getattr(model.generation_config, "eos_token_id", None) if self.task is Task.CAUSAL_LM else None
        if eos is None:
            eos = tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self._waiting: list[_Request] = []
        self._running: list[_GenerateRequest] = []
        self._kv: DynamicCache | None = None
        self._kv_mask: torch.Tensor | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._step_lock = threading.Lock()
        self._labels: dict[str, tuple[str, ...]] = {}  # per-adapter label names (classification)
        self.counters = {"steps": 0, "forwards": 0, "rows": 0, "generated_tokens": 0, "completed": 0, "failed": 0}

    @classmethod
    def from_pretrained(
        cls, path: str | Path, task: Task | str, *, device: str | None = None, dtype: torch.dtype | None = None,
        **config: object,
    ) -> ServingEngine:
        """Load base model and tokenizer from a local directory (never from the network)."""
        task = Task(task)
        model_class = AutoModelForSequenceClassification if task is Task.CLASSIFICATION else AutoModelForCausalLM
        kwargs: dict = {"local_files_only": True}
        if task is Task.CLASSIFICATION and config.get("num_labels"):
            # The shared head is sized for the widest adapter; per-adapter heads replace its weights.
            num_labels = int(config["num_labels"])
            kwargs.update(num_labels=num_labels, id2label={i: f"LABEL_{i}" for i in range(num_labels)},
                          label2id={f"LABEL_{i}": i for i in range(num_labels)}, ignore_mismatched_sizes=True)
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = model_class.from_pretrained(str(path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if device is not None:
            model = model.to(device)
        return cls(model, tokenizer, EngineConfig(task=task, **config))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ServingEngine:
        """Run the step loop in a background thread (idempotent)."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="serving-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop thread; queued and running requests fail with :class:`EngineCapacityError`.

        The engine stays usable (blocking calls drive steps themselves, or ``start()`` again).
        """
        thread, self._thread = self._thread, None
        self._stopping = True
        self._notify()
        if thread is not None:
            thread.join()
        self._stopping = False
        with self._step_lock:
            error = EngineCapacityError("engine stopped")
            for request in [*self._waiting, *self._running]:
                request.fail(error)
                if request.slot is not None:
                    self.cache.release(request.slot)
            self._waiting, self._running = [], []
            self._kv = self._kv_mask = None

    def close(self) -> None:
        """Stop for good: also shuts the adapter loader thread down; new requests are refused."""
        self._closed = True
        self.stop()
        self.cache.close()

    def __enter__(self) -> ServingEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _notify(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    def _loop(self) -> None:
        while not self._stopping:
            if not self.step():
                with self._wakeup:
                    # Short wait when work is queued (an adapter may be loading), longer when idle.
                    self._wakeup.wait(0.01 if self._waiting or self._running else 0.5)

    def _pump(self) -> bool:
        """Drive one step from the caller's thread when no loop thread runs."""
        return self.step() if self._thread is None else False

    # ------------------------------------------------------------------ adapters
    def load_adapter(
        self, name: str, path: str | Path, sha256: str, *, wait: bool = True, pin: bool = False,
        labels: Sequence[str] | None = None,
    ) -> AdapterInfo:
        """Register an adapter directory and read it into host memory (on the loader thread).

        With ``wait=False`` this returns at once and requests for the adapter queue until it is
        ready. Integrity and compatibility errors surface here when waiting, else on the requests.
        ``labels`` names a classification adapter's classes (its head's rows, in order); the head may
        have fewer rows than the engine's ``num_labels``.
        """
        if labels is not None:
            labels = tuple(str(label) for label in labels)
            if not labels:
                raise InvalidRequestError("labels must be a non-empty list of label names", param="labels")
            if self.task is Task.CLASSIFICATION and len(labels) > self.num_labels:
                raise AdapterIncompatibleError(
                    f"adapter {name!r} has {len(labels)} labels; this engine's head holds {self.num_labels}"
                )
            self._labels[name] = labels
        else:
            self._labels.pop(name, None)
        self.cache.register(name, path, sha256)
        loading = self.cache.prefetch(name)
        if wait or pin:
            loading.result()
        if pin:
            self.cache.pin(name)
        return self.cache.info(name)

    def unload_adapter(self, name: str) -> None:
        self.cache.unload(name)
        self._labels.pop(name, None)

    @property
    def num_labels(self) -> int:
        """Outputs of the classification head (0 for causal LMs)."""
        return int(getattr(self.model.config, "num_labels", 0)) if self.task is Task.CLASSIFICATION else 0

    def has_adapter(self, name: str) -> bool:
        return self.cache.is_registered(name)

    def pin_adapter(self, name: str, pinned: bool = True) -> AdapterInfo:
        self.cache.pin(name, pinned)
        return self.cache.info(name)

    # ------------------------------------------------------------------ requests
    def submit_classify(self, text: str, adapter: str | None = None) -> Future:
        """Queue one text; the future resolves to a :class:`ClassificationResult`."""
        self._require_task(Task.CLASSIFICATION)
        if not isinstance(text, str) or not text:
            raise InvalidRequestError("input must be a non-empty string", param="input")
        ids = self.tokenizer(text)["input_ids"]
        if self.max_positions is not None and len(ids) > self.max_positions:
            raise ContextLengthExceededError(
                f"input is {len(ids)} tokens; the model accepts at most {self.max_positions}", param="input"
            )
        request = _ClassifyRequest(seq=0, adapter=adapter, input_ids=ids)
        self._enqueue(request)
        return request.future

    def classify(
        self, texts: str | Sequence[str], adapter: str | None = None, timeout: float | None = None
    ) -> list[ClassificationResult]:
        """Classify texts with ``adapter`` (``None`` = base model); blocks until all are done."""
        futures = [self.submit_classify(t, adapter) for t in ([texts] if isinstance(texts, str) else texts)]
        deadline = None if timeout is None else time.monotonic() + timeout
        results = []
        for future in futures:
            while not future.done() and self._thread is None:
                if not self._pump():
                    time.sleep(0.001)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                results.append(future.result(timeout=remaining))
            except FutureTimeoutError:
                raise TimeoutError("classification did not finish in time") from None
        return results

    def submit_generate(
        self, prompt: str, adapter: str | None = None, params: GenerationParams | None = None, *,
        add_bos: bool = False,
    ) -> GenerationStream:
        """Queue a generation; returns its stream handle at once.

        ``add_bos`` prepends the tokenizer's BOS id when the tokenizer does not add it itself (the
        training engine conditions on ``[bos] + ids(prompt)``)."""
        self._require_task(Task.CAUSAL_LM)
        params = params or GenerationParams()
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequestError("prompt must be a non-empty string", param="prompt")
        ids = self.tokenizer(prompt)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if add_bos and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        if self.max_positions is not None and len(ids) + params.max_tokens > self.max_positions:
            raise ContextLengthExceededError(
                f"prompt is {len(ids)} tokens and max_tokens is {params.max_tokens}; the model's context is"
                f" {self.max_positions} tokens",
                param="max_tokens" if len(ids) < self.max_positions else "prompt",
            )
        stream = GenerationStream(self._pump)
        request = _GenerateRequest(
            seq=0, adapter=adapter, prompt_ids=ids, params=params, sampler=TokenSampler(params),
            tracker=TextTracker(self._decode_text, params.stop), stream=stream,
        )
        self._enqueue(request)
        return stream

    def chat_prompt(self, messages: object) -> str:
        """The prompt text for a chat history: the tokenizer's chat template with the generation prompt,
        or the plain "role: content" format when it has none (see :mod:`.chat`)."""
        self._require_task(Task.CAUSAL_LM)
        return render_chat(self.tokenizer, messages)

    def generate(
        self, prompt: str, adapter: str | None = None, params: GenerationParams | None = None,
        timeout: float | None = None,
    ) -> GenerationResult:
        return self.submit_generate(prompt, adapter, params).result(timeout)

    def stream(
        self, prompt: str, adapter: str | None = None, params: GenerationParams | None = None
    ) -> GenerationStream:
        """Alias of :meth:`submit_generate` that reads well in ``for delta in engine.stream(...)``."""
        return self.submit_generate(prompt, adapter, params)

    def _require_task(self, task: Task) -> None:
        if self.task is not task:
            raise InvalidRequestError(f"this engine serves {self.task.value}, not {task.value}")

    def _decode_text(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _enqueue(self, request: _Request) -> None:
        if request.adapter is not None:
            self.cache.record_request(request.adapter)
            self.cache.prefetch(request.adapter)  # start the disk read while the request waits
        with self._wakeup:
            if self._closed:
                raise EngineCapacityError("engine closed")
            if len(self._waiting) >= self.config.max_waiting:
                raise EngineCapacityError("too many queued requests")
            self._seq += 1
            request.seq = self._seq
            self._waiting.append(request)
            self._wakeup.notify_all()

    # ------------------------------------------------------------------ stepping
    def step(self) -> bool:
        """Run one scheduling step; returns whether anything happened."""
        with self._step_lock:
            if self.task is Task.CAUSAL_LM:
                progressed = self._retire([r for r in self._running if r.cancelled], "cancelled")
            else:
                progressed = False
            with self._wakeup:
                waiting = list(self._waiting)
            free_rows = self.config.max_batch_rows - len(self._running)
            admitted, dropped = select_admissions(waiting, self._admit, free_rows)
            if admitted or dropped:
                taken = set(map(id, admitted + dropped))
                with self._wakeup:
                    self._waiting = [r for r in self._waiting if id(r) not in taken]
            self.counters["failed"] += len(dropped)
            if self.task is Task.CLASSIFICATION:
                self._classify_batch(admitted)
            else:
                self._generation_step(admitted)
            ran = bool(admitted or self._running)
            if ran:
                self.counters["steps"] += 1
            return ran or progressed or bool(dropped)

    def _admit(self, request: _Request) -> Admission:
        if request.cancelled:
            request.fail(RequestCancelledError("request cancelled"))
            return Admission.DROP
        if request.adapter is None:
            request.slot = 0
            return Admission.ADMIT
        try:
            if self.cache.info(request.adapter).tier in ("disk", "loading"):
                self.cache.prefetch(request.adapter)
                return Admission.NOT_READY
            slot = self.cache.try_acquire(request.adapter)
        except EngineError as exc:
            request.fail(exc)
            return Admission.DROP
        if slot is None:
            return Admission.NO_CAPACITY
        request.slot = slot
        return Admission.ADMIT

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict:
        """Engine counters, queue sizes and the adapter cache's per-tier statistics."""
        with self._wakeup:
            waiting = len(self._waiting)
        return {
            "task": self.task.value,
            "waiting": waiting,
            "running": len(self._running),
            **self.counters,
            "cache": self.cache.stats(),
        }


__all__ = [
    "ClassificationResult",
    "EngineConfig",
    "GenerationResult",
    "GenerationStream",
    "ServingEngine",
    "Task",
]
