"""Loading, per process: a model version's trained model and its opened, verified attribution index,
kept in a small LRU cache (`ATTRIBUTION_CACHE_MODELS`) and checked against the files' stamps and the share
policy in force (governed, `_share_policy`) on every use (`_loaded_for`); `model_output` answers from the
cached model. Torch and the engine's heavy modules load on first use, in the worker or serving process
that attributes.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError

from lineage.stored_files import file_stamps, local_directory
from models_registry import services as model_services

# Torch-free engine modules only at import time: the index and the attributor (torch) are imported inside
# the functions that load them, which only attributing processes call.
from ..engine.layout import MANIFEST_NAME
from ..engine.shares import SharePolicy
from ..models import AttributionIndex, IndexState
from .errors import BuildError, IndexCorrupt, IndexNotReady

if TYPE_CHECKING:
    from ..engine.index import AttributionIndex as EngineIndex
    from ..engine.query import Attributor


def _make_attributable(model):
    """A loaded peft model has every parameter frozen; attribution differentiates exactly what training
    trained (LoRA matrices and the `modules_to_save` copies), so those get requires_grad back."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name or ".modules_to_save." in name)
    return model.eval()


def _device() -> str:
    import torch

    if settings.ATTRIBUTION_DEVICE == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.ATTRIBUTION_DEVICE


def _load_model(version):
    from models_registry.training import load_trained

    try:
        loaded = load_trained(model_services.model_version_local_dir(version=version), device=_device())
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"The model version's adapter files cannot be loaded: {exc}") from exc
    return loaded.model, loaded.tokenizer, loaded.manifest["content"]


def _share_policy() -> SharePolicy:
    """The share policy in force: the false-discovery rate and most credit groups paid that a passed
    governance proposal set (`setSharePolicy`, mirrored as a `GovernedValue`), else ATTRIBUTION_FDR and
    ATTRIBUTION_TOP_GROUPS."""
    from lineage.hooks import share_policy_in_force  # governance registers it (governance/apps.py)

    in_force = share_policy_in_force()
    return SharePolicy(fdr=in_force["fdr"], top_groups=in_force["top_groups"],
                       rows_per_contributor=settings.ATTRIBUTION_ROWS_PER_CONTRIBUTOR)


def _index_file_names(manifest: dict) -> list[str]:
    return [*(shard["file"] for shard in manifest["shards"]), manifest["credit_file"]["file"],
            manifest["contributors_file"]["file"],
            *([manifest["projection_file"]["file"]] if "projection_file" in manifest else [])]


@dataclass
class _Loaded:
    index_hash: str
    model: object
    tokenizer: object
    content: dict
    engine_index: EngineIndex
    attributor: Attributor
    directory: Path
    stamps: dict
    lock: threading.Lock


_cache: OrderedDict[str, _Loaded] = OrderedDict()
_cache_lock = threading.Lock()


def _index_local_dir(index: AttributionIndex) -> Path:
    return local_directory(storage_prefix=index.storage_prefix, manifest_name=MANIFEST_NAME,
                           cache_dir=Path(settings.ATTRIBUTION_CACHE_DIR) / index.index_hash,
                           files_of=lambda raw: _index_file_names(json.loads(raw)))


def _open_verified(index: AttributionIndex) -> tuple[EngineIndex, Path]:
    try:
        directory = _index_local_dir(index)
        from ..engine.index import AttributionIndex as EngineIndex

        engine_index = EngineIndex(directory, keep_in_memory=True)
        report = engine_index.verify(expected_index_hash=index.index_hash)
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"The attribution index of model {index.model_version_hash[:12]} cannot be read: {exc}") from exc
    if not report.ok:
        raise IndexCorrupt(
            f"The attribution index of model {index.model_version_hash[:12]} failed verification "
            f"({'; '.join(report.problems)}): its files differ from index {index.index_hash[:12]}. "
            "No receipt is computed from it; rebuild the index."
        )
    return engine_index, directory


def _evict(model_version_hash: str) -> None:
    with _cache_lock:
        _cache.pop(model_version_hash, None)


def _loaded_for(index: AttributionIndex) -> _Loaded:
    key = index.model_version_hash
    policy = _share_policy()
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    if entry is not None and entry.index_hash == index.index_hash:
        try:
            unchanged = file_stamps(entry.directory) == entry.stamps
        except OSError:
            unchanged = False
        # A share policy changed by governance since this entry was loaded: load it again under the new one.
        if unchanged and entry.attributor.policy == policy:
            return entry
        _evict(key)  # files touched since they were verified: verify again before trusting them
    engine_index, directory = _open_verified(index)
    model, tokenizer, content = _load_model(index.model_version)
    _make_attributable(model)
    from ..engine.query import Attributor

    attributor = Attributor(model, engine_index, policy)
    entry = _Loaded(index.index_hash, model, tokenizer, content, engine_index, attributor, directory,
                    file_stamps(directory), threading.Lock())
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > max(1, settings.ATTRIBUTION_CACHE_MODELS):
            _cache.popitem(last=False)
    return entry


def cache_clear() -> None:
    """Forget every loaded model and index in this process (tests; after a rebuild)."""
    with _cache_lock:
        _cache.clear()


def _ready_index(model_version) -> AttributionIndex:
    index = AttributionIndex.objects.filter(model_version_id=model_version.pk).first()
    if index is None or index.state != IndexState.READY:
        state = "not queued" if index is None else index.get_state_display().lower()
        detail = f" ({index.error})" if index is not None and index.error else ""
        raise IndexNotReady(f"The attribution index of {model_version.slug} is {state}{detail}; "
                            "receipts are available once it is ready.")
    return index


def model_output(*, model_version, input_text: str) -> str:
    """The model's own answer to `input_text` (predicted label or greedy generation), from the cached model."""
    from models_registry.training import generate_text, predict_labels

    if not isinstance(input_text, str) or not input_text.strip():
        raise ValidationError({"input": "Send the input text to answer."})
    entry = _loaded_for(_ready_index(model_version))
    content = entry.content
    max_len = int(content["hyperparameters"]["max_seq_length"])
    with entry.lock:
        if content["task"] == "text-classification":
            return predict_labels(entry.model, entry.tokenizer, [input_text], max_length=max_len)[0]
        return generate_text(entry.model, entry.tokenizer, input_text, max_new_tokens=settings.ATTRIBUTION_MAX_NEW_TOKENS,
                             as_instruction=content["task"] == "instruction")
