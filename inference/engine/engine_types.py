"""The serving engine's vocabulary: what it serves, how it is sized, and what a request returns.

:class:`Task` (classification or causal LM: the model class and the request type served),
:class:`EngineConfig` (adapter slots, rank pages, batch rows, cache and queue sizes, the shared head's
labels) and the results, :class:`ClassificationResult` and :class:`GenerationResult`. Importable from
:mod:`.engine` and the package as before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_HEAD_MODULES = ("classifier", "score")


class Task(enum.StrEnum):
    """What the base model does; decides the model class and which request type is served."""

    CLASSIFICATION = "classification"
    CAUSAL_LM = "causal_lm"


@dataclass(frozen=True)
class EngineConfig:
    """Sizing of the engine. ``num_slots`` adapters can be resident on device at once (plus slot 0,
    the bare base model); ``num_pages`` rank columns are shared by them (default: all at
    ``max_rank``)."""

    task: Task
    num_slots: int = 8
    max_rank: int = 16
    num_pages: int | None = None
    target_modules: tuple[str, ...] | None = None  # default: peft's default targets for the model
    head_modules: tuple[str, ...] = DEFAULT_HEAD_MODULES  # per-adapter heads (classification only)
    max_batch_rows: int = 32
    host_cache_bytes: int = 256 * 2**20
    max_waiting: int = 10_000
    # Classification: outputs of the shared head. Adapters trained on fewer labels are padded and
    # their unused logits masked, so Datanets with different label counts share one base model.
    num_labels: int | None = None


@dataclass(frozen=True)
class ClassificationResult:
    label: str
    label_id: int
    probabilities: dict[str, float]
    adapter: str | None
    slot: int | None = None
    input_tokens: int = 0


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: str  # "stop" (stop string or end-of-sequence), "length" or "cancelled"
    prompt_tokens: int
    completion_tokens: int
    adapter: str | None
    seed: int
    token_ids: tuple[int, ...]  # generated ids, end-of-sequence included; what attribution scores
    slot: int | None = None  # the device slot that served it (0 = base model)
