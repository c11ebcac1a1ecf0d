"""Batched multi-adapter LoRA layers: one base model, many adapters, one forward.

Every wrapped Linear computes, for each row ``b`` of the batch,
``y_b = x_b W + (x_b A_b) B_b`` where ``A_b``/``B_b`` are the LoRA factors of that row's adapter
(the LoRA scale is folded into ``B`` when the adapter is installed, which saves one op per layer).

Memory layout (S-LoRA "unified paging", adapted): adapter weights live in *pages*, one page per
rank column, in two preallocated tensors per layer ``a_pages[num_pages, in]`` and
``b_pages[num_pages, out]``. An adapter of rank ``r`` owns ``r`` pages, so device memory is sized by
rank, not by the largest rank the pool accepts. Page 0 is all zeros and never written: it is the
"no adapter" page and the padding page for rows whose adapter has a lower rank than the batch.

A *slot* is the unit the scheduler reasons about (one resident adapter): ``slot_pages[slot, r_max]``
lists its pages (0-padded) and slot 0 is "base model only". Per forward, one gather of the slot
table gives each row its page ids, shared by every wrapped layer. Each layer then runs a fixed
sequence of ops whatever the number of distinct adapters, with no Python loop over adapters:

- prompts (several tokens per row): gather the row's ``A`` and ``B`` pages into a scratch buffer
  shared by all layers, ``bmm`` down and ``baddbmm_`` up into the base output in place. A padded row
  is one contiguous segment of one adapter's tokens, so this is the SGMV prompt path without sorting;
- decoding (one token per row): gather ``A`` and ``bmm`` down as above, then the up-projection is an
  ``embedding_bag`` over the row's ``B`` pages weighted by its down-projection (BGMV): it reads each
  page once instead of copying ``B`` into a gathered tensor first. On the CPU (float32, inference)
  the whole decoding term runs instead as one native loop per layer (``cpu_kernels``,
  ``kernels/bgmv_cpu.c``): at a small model's sizes, dispatching those four ops costs more than
  their arithmetic. The PyTorch ops stay the path everywhere else and wherever the kernel cannot build.

Per decoding step the unavoidable cost is reading every row's adapter pages once; the rest is a
constant number of ops per layer.

Per-adapter classification heads (peft ``modules_to_save``) use :class:`SlotHeadLinear`, a pool of
full head weights per slot gathered the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels


@dataclass(frozen=True)
class BatchRouting:
    """Which adapter each batch row uses, resolved once per forward and shared by all layers."""

    slot_ids: torch.Tensor  # [rows] int64, slot per row (0 = no adapter)
    page_ids: torch.Tensor  # [rows, rank_width] int64, page per rank column (0 = zero page)
    # Derived once per forward rather than in each of the dozens of wrapped layers: in a decoding
    # step of a small model the per-layer Python work is a visible share of the step.
    flat_page_ids: torch.Tensor  # page_ids.reshape(-1), contiguous
    bag_offsets: torch.Tensor  # [rows] start of each row's pages in flat_page_ids (the decode up-projection's bags)
    rows: int
    rank_width: int


class RoutingState:
    """Holds the routing of the forward in progress; all wrapped layers of a model share one.

    Only one forward runs at a time per model (the engine's step loop), so a plain attribute is
    enough; ``None`` means "no routing set", in which case layers behave as the bare base model.

    It also owns the scratch buffer the layers gather adapter pages into. Layers run one after the
    other and each consumes its gathered pages before returning, so one buffer serves all of them
    and no forward allocates gathered pages again once the buffer has grown to the batch's size.
    """

    def __init__(self) -> None:
        self.current: BatchRouting | None = None
        self._scratch: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
        # Ready-shaped views of the scratch buffers, so a layer's gather costs no slicing or reshaping
        # (a few microseconds each, paid by every wrapped layer of every decoding step otherwise).
        self._views: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}

    def scratch(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """A ``[rows, cols]`` buffer to gather into (the same view object for the same shape), or ``None``
        when autograd records the forward (a reused buffer would be overwritten before the backward
        pass reads it)."""
        if torch.is_grad_enabled():
            return None
        view = self._views.get((rows, cols, dtype, device))
        if view is not None:
            return view
        buffer = self._scratch.get((dtype, device))
        if buffer is None or buffer.numel() < rows * cols:
            # A plain (not inference-mode) tensor, so forwards under no_grad may write it as well.
            with torch.inference_mode(False):
                buffer = torch.empty(rows * cols, dtype=dtype, device=device)
            self._scratch[(dtype, device)] = buffer
            self._views = {key: v for key, v in self._views.items() if key[2:] != (dtype, device)}  # old buffer
        view = buffer[:rows * cols].view(rows, cols)
        self._views[(rows, cols, dtype, device)] = view
        return view


class SlotLoraLinear(nn.Module):
    """A frozen base ``nn.Linear`` plus a paged pool of LoRA factors selected per batch row."""

    def __init__(self, base: nn.Linear, num_pages: int, routing: RoutingState, *, native_kernels: bool = True) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"SlotLoraLinear wraps nn.Linear, got {type(base).__name__}")
        self.base = base
        self._plain_base = type(base) is nn.Linear  # subclasses (quantised layers) keep their own forward
        self.routing = routing
        # The fused CPU kernel for decoding steps (None: PyTorch ops only). Only behind a plain Linear,
        # whose output is a fresh contiguous tensor of the input's dtype that the kernel may add into.
        self._native_bgmv = cpu_kernels.bgmv_function() if native_kernels and self._plain_base else None
        weight = base.weight
        self.register_buffer(
            "a_pages", torch.zeros(num_pages, base.in_features, dtype=weight.dtype, device=weight.device)
        )
        self.register_buffer(
            "b_pages", torch.zeros(num_pages, base.out_features, dtype=weight.dtype, device=weight.device)
        )

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def _gather(self, pages: torch.Tensor, routing: BatchRouting) -> torch.Tensor:
        """``pages[page_ids]`` as ``[rows, width, features]``, written into the shared scratch."""
        rows, width = routing.rows, routing.rank_width
        features = pages.shape[1]
        buffer = self.routing.scratch(rows * width, features, pages.dtype, pages.device)
        if buffer is None:
            gathered = pages.index_select(0, routing.flat_page_ids)
        else:
            gathered = torch.index_select(pages, 0, routing.flat_page_ids, out=buffer)
        return gathered.view(rows, width, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A plain Linear is called functionally: Module.__call__ costs microseconds per layer per step.
        out = F.linear(x, self.base.weight, self.base.bias) if self._plain_base else self.base(x)
        routing = self.routing.current
        if routing is None or routing.rank_width == 0:
            return out
        rows = routing.rows
        native = self._native_bgmv
        if native is not None and x.numel() == rows * x.shape[-1] and cpu_kernels.bgmv_applies(x, self.a_pages):
            # Decoding on the CPU: the whole LoRA term in one native pass (see kernels/bgmv_cpu.c).
            return cpu_kernels.bgmv_(native, out, x, self.a_pages, self.b_pages, routing.flat_page_ids, rows,
                                     routing.rank_width)
        x_rows = x.reshape(rows, -1, x.shape[-1])
        down = torch.bmm(x_rows, self._gather(self.a_pages, routing).transpose(1, 2))  # [rows, tokens, width]
        if x_rows.shape[1] == 1:
            # Decoding: sum_r down[row, r] * B[page[row, r]] reads each B page once, with no gathered copy;
            # the base output is fresh, so accumulate into it in place. torch.embedding_bag is called
            # directly with the routing's precomputed bag offsets: F.embedding_bag validates in Python and
            # builds the offsets anew, which doubled this op's cost on a small model.
            up = torch.embedding_bag(self.b_pages, routing.flat_page_ids, routing.bag_offsets, False, 0, False,
                                     down.view(-1), False)[0]
            out.view(rows, -1).add_(up)
        else:
            out.view(rows, x_rows.shape[1], -1).baddbmm_(down, self._gather(self.b_pages, routing))
        return out


class SlotHeadLinear(nn.Module):
    """A per-slot pool of full Linear heads (peft ``modules_to_save``), gathered per batch row.

    Slot 0 and adapters that ship no head hold a copy of the base head, so rows without their own
    head behave exactly like the base model.

    Adapters trained on fewer labels than the head has outputs (classifiers of Datanets with
    different label counts sharing one base) are installed zero-padded, and a per-slot additive mask
    sets their unused logits to ``-inf``: softmax gives those labels probability 0 and argmax never
    picks them.
    """

    def __init__(self, base: nn.Linear, num_slots: int, routing: RoutingState) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"SlotHeadLinear wraps nn.Linear, got {type(base).__name__}")
        self.base = base
        self.routing = routing
        self.register_buffer("weight_pool", base.weight.detach().unsqueeze(0).repeat(num_slots, 1, 1))
        if base.bias is not None:
            self.register_buffer("bias_pool", base.bias.detach().unsqueeze(0).repeat(num_slots, 1))
        else:
            self.bias_pool = None
        self.register_buffer(
            "mask_pool", torch.zeros(num_slots, base.out_features, dtype=base.weight.dtype, device=base.weight.device)
        )

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        routing = self.routing.current
        if routing is None:
            return self.base(x)
        weights = self.weight_pool.index_select(0, routing.slot_ids)  # [rows, out, in]
        rows = weights.shape[0]
        x_rows = x.reshape(rows, -1, x.shape[-1])
        if self.bias_pool is not None:
            bias = self.bias_pool.index_select(0, routing.slot_ids).unsqueeze(1)
            out = torch.baddbmm(bias, x_rows, weights.transpose(1, 2))
        else:
            out = torch.bmm(x_rows, weights.transpose(1, 2))
        out = out + self.mask_pool.index_select(0, routing.slot_ids).unsqueeze(1)
        return out.view(*x.shape[:-1], weights.shape[1])

    def write_slot(self, slot: int, weight: torch.Tensor | None, bias: torch.Tensor | None) -> None:
        """Install a head into ``slot``; ``weight=None`` restores the base head.

        A ``weight`` with fewer rows than the head's outputs is zero-padded and its extra logits are
        masked to ``-inf`` for rows routed to ``slot``."""
        rows = self.out_features if weight is None else weight.shape[0]
        if rows > self.out_features:
            raise ValueError(f"head has {rows} outputs; the pool holds at most {self.out_features}")
        if weight is None:
            self.weight_pool[slot].copy_(self.base.weight)
        else:
            self.weight_pool[slot, :rows].copy_(weight)
            self.weight_pool[slot, rows:].zero_()
        if self.bias_pool is not None:
            if bias is None and weight is not None:
                self.bias_pool[slot].zero_()
            elif bias is None:
                self.bias_pool[slot].copy_(self.base.bias)
            else:
                self.bias_pool[slot, :rows].copy_(bias)
                self.bias_pool[slot, rows:].zero_()
        self.mask_pool[slot].zero_()
        self.mask_pool[slot, rows:] = float("-inf")


def _matches_suffix(name: str, suffixes: Sequence[str]) -> bool:
    return any(name == s or name.endswith("." + s) for s in suffixes)


class SlotLoraModel:
    """Owns the slot/page tables of one wrapped base model and installs adapters into it.

    Not thread-safe by itself: the adapter cache serialises installs, and a slot is only written
    while no running batch uses it (the cache's slot locks guarantee that).
    """

    def __init__(
        self,
        model: nn.Module,
        target_modules: Sequence[str],
        head_modules: Sequence[str] = (),
        *,
        num_slots: int,
        max_rank: int,
        num_pages: int | None = None,
        native_kernels: bool = True,
    ) -> None:
        """Wrap ``model`` in place.

        ``num_slots`` counts adapter slots *besides* slot 0 (the base model). ``num_pages`` is the
        page budget shared by all slots (default: every slot at ``max_rank``); a smaller budget lets
        many low-rank adapters stay resident without paying for the largest rank. ``native_kernels``
        lets CPU decoding steps use the fused native kernel when it builds here (see ``cpu_kernels``).
        """
        if num_slots < 1 or max_rank < 1:
            raise ValueError("num_slots and max_rank must be >= 1")
        self.model = model
        self.num_slots = num_slots
        self.max_rank = max_rank
        if num_pages is not None and num_pages < max_rank:
            raise ValueError("num_pages must hold at least one adapter of max_rank")
        self.num_pages = 1 + (num_pages if num_pages is not None else num_slots * max_rank)
        self.routing = RoutingState()
        self.lora_layers: dict[str, SlotLoraLinear] = {}
        self.heads: dict[str, SlotHeadLinear] = {}

        replacements: list[tuple[str, nn.Module]] = []
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and _matches_suffix(name, head_modules):
                replacements.append((name, SlotHeadLinear(module, num_slots + 1, self.routing)))
            elif isinstance(module, nn.Linear) and _matches_suffix(name, target_modules):
                replacements.append((name, SlotLoraLinear(module, self.num_pages, self.routing,
                                                            native_kernels=native_kernels)))
        if not any(isinstance(m, SlotLoraLinear) for _, m in replacements):
            raise ValueError(f"no nn.Linear module of the model matches target_modules={list(target_modules)}")
        for name, wrapper in replacements:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, wrapper)
            if isinstance(wrapper, SlotHeadLinear):
                self.heads[name] = wrapper
            else:
                self.lora_layers[name] = wrapper

        device = next(model.parameters()).device
        self.device = device
        self.slot_pages = torch.zeros(num_slots + 1, max_rank, dtype=torch.long, device=device)
        self.slot_rank = [0] * (num_slots + 1)
        self._slot_page_lists: list[list[int]] = [[] for _ in range(num_slots + 1)]
        self._free_pages: list[int] = list(range(self.num_pages - 1, 0, -1))
        self._last_routing: tuple[tuple[int, ...], BatchRouting] | None = None

    @property
    def native_kernels(self) -> bool:
        """Whether decoding steps on the CPU run the fused native kernel."""
        return any(layer._native_bgmv is not None for layer in self.lora_layers.values())

    # ------------------------------------------------------------------ routing
    def routing_for(self, slot_ids: Sequence[int]) -> BatchRouting:
        """Resolve per-row slots into page ids; the rank width is the batch's largest rank.

        The last resolution is kept: consecutive decoding steps of one batch route the same rows, and
        building the tables costs tens of microseconds, a visible share of a small model's step.
        Installing or clearing a slot drops it.
        """
        key = tuple(slot_ids)
        if self._last_routing is not None and self._last_routing[0] == key:
            return self._last_routing[1]
        width = max((self.slot_rank[s] for s in key), default=0)
        slots = torch.tensor(key, dtype=torch.long, device=self.device)
        pages = self.slot_pages.index_select(0, slots)[:, :width]
        pages = pages.contiguous()
        offsets = torch.arange(0, pages.numel(), max(width, 1), dtype=torch.long, device=self.device)
        routing = BatchRouting(slot_ids=slots, page_ids=pages, flat_page_ids=pages.view(-1), bag_offsets=offsets,
                               rows=pages.shape[0], rank_width=width)
        self._last_routing = (key, routing)
        return routing

    @contextlib.contextmanager
    def route(self, slot_ids: Sequence[int]) -> Iterator[BatchRouting]:
        """Route the forwards run inside this block: row ``i`` uses adapter slot ``slot_ids[i]``."""
        routing = self.routing_for(slot_ids)
        self.routing.current = routing
        try:
            yield routing
        finally:
            self.routing.current = None

    # ------------------------------------------------------------------ slots
    @property
    def free_pages(self) -> int:
        return len(self._free_pages)

    def bytes_per_page(self) -> int:
        """Device bytes one rank column costs across all wrapped layers."""
        return sum(
            (layer.a_pages.shape[1] + layer.b_pages.shape[1]) * layer.a_pages.element_size()
            for layer in self.lora_layers.values()
        )

    def head_bytes_per_slot(self) -> int:
        return sum(
            head.weight_pool[0].numel() * head.weight_pool.element_size()
            + (0 if head.bias_pool is None else head.bias_pool[0].numel() * head.bias_pool.element_size())
            for head in self.heads.values()
        )

    def slot_device_bytes(self, slot: int) -> int:
        """Device bytes held by the adapter in ``slot`` (its pages plus its head slot)."""
        return self.slot_rank[slot] * self.bytes_per_page() + self.head_bytes_per_slot()

    def install(self, slot: int, weights: AdapterTensors) -> None:
        """Copy an adapter's tensors into ``slot`` (which must be empty) and claim its pages."""
        if not 1 <= slot <= self.num_slots:
            raise ValueError(f"slot {slot} out of range 1..{self.num_slots}")
        if self.slot_rank[slot]:
            raise ValueError(f"slot {slot} is occupied")
        rank = weights.rank
        if rank > self.max_rank:
            raise ValueError(f"adapter rank {rank} exceeds the pool's max_rank {self.max_rank}")
        if rank > len(self._free_pages):
            raise ValueError(f"not enough free pages: need {rank}, have {len(self._free_pages)}")
        self._last_routing = None  # the slot's page table changes
        pages = [self._free_pages.pop() for _ in range(rank)]
        page_index = torch.tensor(pages, dtype=torch.long, device=self.device)
        for name, layer in self.lora_layers.items():
            factors = weights.lora.get(name)
            if factors is None:
                layer.a_pages.index_fill_(0, page_index, 0)
                layer.b_pages.index_fill_(0, page_index, 0)
                continue
            a, b = factors
            layer_rank = a.shape[0]
            # Ranks below the adapter's rank (peft rank_pattern) keep zero pages: zero columns
            # add nothing to the product.
            layer.a_pages[page_index[:layer_rank]] = a.to(layer.a_pages.device, non_blocking=True)
            layer.b_pages[page_index[:layer_rank]] = b.to(layer.b_pages.device, non_blocking=True)
            if layer_rank < rank:
                layer.a_pages.index_fill_(0, page_index[layer_rank:], 0)
                layer.b_pages.index_fill_(0, page_index[layer_rank:], 0)
        for name, head in self.heads.items():
            weight, bias = weights.heads.get(name, (None, None))
            head.write_slot(slot, weight, bias)
        self.slot_pages[slot].zero_()
        self.slot_pages[slot, :rank] = page_index
        self.slot_rank[slot] = rank
        self._slot_page_lists[slot] = pages
        self._last_routing = None  # again after the change, so no resolution made meanwhile survives it

    def clear(self, slot: int) -> None:
        """Free ``slot`` and its pages. Page contents are overwritten on the next install."""
        self._last_routing = None
        self._free_pages.extend(self._slot_page_lists[slot])
        self._slot_page_lists[slot] = []
        for head in self.heads.values():
            head.mask_pool[slot].zero_()
        self.slot_pages[slot].zero_()
        self.slot_rank[slot] = 0
        self._last_routing = None


@dataclass
class AdapterTensors:
    """An adapter's tensors in the layout :meth:`SlotLoraModel.install` copies into pages.

    ``lora[module_name] = (a [r, in], b_scaled [r, out])`` where ``b_scaled`` already carries the
    LoRA scale; ``heads[module_name] = (weight [out, in], bias [out] | None)``.
    """

    rank: int
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]
    heads: dict[str, tuple[torch.Tensor, torch.Tensor | None]]

    def nbytes(self) -> int:
        tensors = [t for pair in self.lora.values() for t in pair]
        tensors += [t for pair in self.heads.values() for t in pair if t is not None]
        return sum(t.numel() * t.element_size() for t in tensors)
