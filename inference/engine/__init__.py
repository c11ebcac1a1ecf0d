"""OpenLoRA serving engine: one base model serves many LoRA adapters in mixed batches.

Plain Python + PyTorch (no Django). Public API:

- :class:`ServingEngine` / :class:`EngineConfig`: load a base model, load/pin/unload adapters,
  classify and generate (blocking, or streaming through :class:`GenerationStream`).
- :class:`GenerationParams`: validated sampling settings.
- :func:`render_chat`: a chat history as prompt text (the tokenizer's chat template, or the plain
  "role: content" format of :func:`plain_chat_prompt`).
- :class:`SlotLoraModel`, :class:`SlotLoraLinear`, :class:`SlotHeadLinear`: the batched
  multi-adapter layers, usable without the engine.
- :class:`AdapterCache`: the device / host / disk adapter tiers.
- :func:`adapter_directory_sha256`: the digest callers must pass when loading an adapter.
- Errors in :mod:`.errors`, each with ``http_status`` and an OpenAI-style ``to_dict()``.
- :mod:`.server`: the model server (uvicorn + Starlette, :mod:`.server_app`) around the engines of an
  :class:`~.engine_host.EngineHost`, loading from a :mod:`.model_store` (``python -m inference.engine.server``).
"""

from .adapters import AdapterSource, LoadedAdapter, adapter_directory_sha256, adapter_sha256, read_adapter
from .cache import AdapterCache, AdapterInfo
from .chat import plain_chat_prompt, render_chat
from .engine import (
    ClassificationResult,
    EngineConfig,
    GenerationResult,
    GenerationStream,
    ServingEngine,
    Task,
)
from .errors import (
    AdapterIncompatibleError,
    AdapterIntegrityError,
    AdapterNotFoundError,
    ContextLengthExceededError,
    EngineCapacityError,
    EngineError,
    InvalidRequestError,
    RequestCancelledError,
)
from .generation import GenerationParams
from .scheduler import Admission, select_admissions
from .slot_lora import AdapterTensors, BatchRouting, SlotHeadLinear, SlotLoraLinear, SlotLoraModel

__all__ = [
    "AdapterCache",
    "AdapterIncompatibleError",
    "AdapterInfo",
    "AdapterIntegrityError",
    "AdapterNotFoundError",
    "AdapterSource",
    "AdapterTensors",
    "Admission",
    "BatchRouting",
    "ClassificationResult",
    "ContextLengthExceededError",
    "EngineCapacityError",
    "EngineConfig",
    "EngineError",
    "GenerationParams",
    "GenerationResult",
    "GenerationStream",
    "InvalidRequestError",
    "LoadedAdapter",
    "RequestCancelledError",
    "ServingEngine",
    "SlotHeadLinear",
    "SlotLoraLinear",
    "SlotLoraModel",
    "Task",
    "adapter_directory_sha256",
    "adapter_sha256",
    "plain_chat_prompt",
    "read_adapter",
    "render_chat",
    "select_admissions",
]
