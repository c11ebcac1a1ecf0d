"""Reading peft LoRA adapter directories into the engine's page layout.

A peft directory (written by ``PeftModel.save_pretrained``) holds ``adapter_config.json`` and
``adapter_model.safetensors`` with keys such as
``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight`` (``[r, in]``),
``...query.lora_B.weight`` (``[out, r]``) and, for ``modules_to_save`` heads,
``base_model.model.classifier.weight``. The files are verified against a sha256 the caller vouches
for (the model registry computed it with :func:`adapter_sha256` when the adapter was accepted), so a
file swapped on disk is refused instead of served.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from .errors import AdapterIncompatibleError, AdapterIntegrityError, AdapterNotFoundError
from .slot_lora import AdapterTensors, SlotLoraModel

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<factor>[AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class AdapterSource:
    """Where an adapter lives on disk and the digest its files must have."""

    name: str
    path: Path
    sha256: str


def adapter_sha256(config_bytes: bytes, weights_bytes: bytes) -> str:
    """Digest of an adapter: sha256 over the config then the weights, each length-prefixed.

    Both files are covered because the config carries ``lora_alpha`` (the scale): swapping it alone
    changes every output. Length prefixes make the concatenation unambiguous.
    """
    digest = hashlib.sha256()
    for blob in (config_bytes, weights_bytes):
        digest.update(len(blob).to_bytes(8, "big"))
        digest.update(blob)
    return digest.hexdigest()


def adapter_directory_sha256(path: str | Path) -> str:
    """:func:`adapter_sha256` of a peft adapter directory on disk."""
    path = Path(path)
    return adapter_sha256((path / CONFIG_FILE).read_bytes(), (path / WEIGHTS_FILE).read_bytes())


@dataclass
class LoadedAdapter:
    """An adapter read from disk and converted to page layout, held in host memory."""

    name: str
    tensors: AdapterTensors
    raw_bytes: int  # size of the tensors as stored in the peft file
    config: dict


def _pattern_value(patterns: dict, module: str, default: float) -> float:
    """peft ``rank_pattern``/``alpha_pattern``: a key matches a module name by suffix or regex."""
    for key, value in patterns.items():
        if module == key or module.endswith("." + key) or re.fullmatch(key, module):
            return value
    return default


def read_adapter(
    source: AdapterSource, model: SlotLoraModel, *, pin_memory: bool = False
) -> LoadedAdapter:
    """Read, verify and convert an adapter for ``model``.

    Raises :class:`AdapterNotFoundError` if the files are missing, :class:`AdapterIntegrityError` on
    a sha256 mismatch and :class:`AdapterIncompatibleError` if the adapter does not fit the model.
    """
    try:
        config_bytes = (source.path / CONFIG_FILE).read_bytes()
        weights_bytes = (source.path / WEIGHTS_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise AdapterNotFoundError(f"adapter {source.name!r}: {exc.filename} not found") from exc
    actual = adapter_sha256(config_bytes, weights_bytes)
    if actual != source.sha256.lower():
        raise AdapterIntegrityError(
            f"adapter {source.name!r}: sha256 mismatch (expected {source.sha256}, files hash to {actual});"
            " refusing to load"
        )
    config = json.loads(config_bytes)
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterIncompatibleError(f"adapter {source.name!r}: peft_type {config['peft_type']} is not LORA")
    for flag in ("use_dora", "fan_in_fan_out", "lora_bias"):
        if config.get(flag):
            raise AdapterIncompatibleError(f"adapter {source.name!r}: {flag}=true is not supported")
    state = load_safetensors(weights_bytes)
    return LoadedAdapter(
        name=source.name,
        tensors=_to_page_layout(source.name, config, state, model, pin_memory),
        raw_bytes=sum(t.numel() * t.element_size() for t in state.values()),
        config=config,
    )


def _to_page_layout(
    name: str, config: dict, state: dict[str, torch.Tensor], model: SlotLoraModel, pin_memory: bool
) -> AdapterTensors:
    factors: dict[str, dict[str, torch.Tensor]] = {}
    heads: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        module_key = key.removeprefix(_PEFT_PREFIX)
        match = _LORA_KEY.match(module_key)
        if match:
            factors.setdefault(match["module"], {})[match["factor"]] = tensor
            continue
        module, _, param = module_key.rpartition(".")
        module = module.removesuffix(".modules_to_save.default")
        if module in model.heads and param in ("weight", "bias"):
            heads.setdefault(module, {})[param] = tensor
        else:
            raise AdapterIncompatibleError(f"adapter {name!r}: key {key!r} matches no wrapped module")

    dtype = next(iter(model.lora_layers.values())).a_pages.dtype
    use_rslora = bool(config.get("use_rslora"))
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module, pair in factors.items():
        layer = model.lora_layers.get(module)
        if layer is None:
            raise AdapterIncompatibleError(f"adapter {name!r}: module {module!r} is not a wrapped LoRA target")
        if set(pair) != {"A", "B"}:
            raise AdapterIncompatibleError(f"adapter {name!r}: module {module!r} lacks lora_A or lora_B")
        a, b = pair["A"], pair["B"]
        rank = a.shape[0]
        if a.shape != (rank, layer.in_features) or b.shape != (layer.out_features, rank):
            raise AdapterIncompatibleError(
                f"adapter {name!r}: {module} shapes {tuple(a.shape)}/{tuple(b.shape)} do not fit"
                f" {layer.in_features}->{layer.out_features}"
            )
        alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", rank))
        scale = alpha / math.sqrt(rank) if use_rslora else alpha / rank
        # The scale is folded into B once here (in float64, then cast) so layers skip a multiply.
        b_scaled = (b.double() * scale).t()
        lora[module] = (_host(a.to(dtype), pin_memory), _host(b_scaled.to(dtype), pin_memory))

    head_tensors: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    for module, params in heads.items():
        head = model.heads[module]
        weight = params.get("weight")
        out_features, in_features = head.weight_pool.shape[1:]
        # Fewer labels than the pooled head is fine (padded and masked at install); more is not.
        if weight is None or weight.dim() != 2 or weight.shape[1] != in_features or weight.shape[0] > out_features:
            raise AdapterIncompatibleError(
                f"adapter {name!r}: head {module!r} weight shape"
                f" {None if weight is None else tuple(weight.shape)} does not fit the base head"
                f" {(out_features, in_features)} (more labels than the engine's num_labels?)"
            )
        bias = params.get("bias")
        head_tensors[module] = (
            _host(weight.to(dtype), pin_memory),
            None if bias is None else _host(bias.to(dtype), pin_memory),
        )

    rank = max((a.shape[0] for a, _ in lora.values()), default=0)
    if rank > model.max_rank:
        raise AdapterIncompatibleError(f"adapter {name!r}: rank {rank} exceeds the engine's max_rank {model.max_rank}")
    return AdapterTensors(rank=rank, lora=lora, heads=head_tensors)


def _host(tensor: torch.Tensor, pin_memory: bool) -> torch.Tensor:
    """Contiguous host copy; pinned when a GPU will receive it, so uploads can be asynchronous."""
    tensor = tensor.contiguous()
    return tensor.pin_memory() if pin_memory else tensor
