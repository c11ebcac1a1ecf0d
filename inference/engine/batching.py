"""The forward passes of one engine step: a classification batch, or prefill and decode of a generation batch.

:class:`BatchedForwards` is mixed into :class:`~.engine.ServingEngine`, which owns the state these methods
use (the model and its adapter slots, the running rows and their KV cache, the counters). Rows of different
adapters share every forward: prompts that join are left-padded and prefilled together, their KV cache is
merged into the running batch, every running row then decodes one token, and finished or cancelled rows are
retired and the cache compacted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from .engine_requests import _ClassifyRequest, _GenerateRequest, _Request
from .engine_types import ClassificationResult, GenerationResult
from .errors import EngineError


class BatchedForwards:
    """Classification and generation forwards of :class:`~.engine.ServingEngine`, and the release of the
    adapter slots of the rows they finish (a mixin: see the module)."""

    def _release(self, requests: Sequence[_Request]) -> None:
        for request in requests:
            if request.slot is not None:
                self.cache.release(request.slot)
                request.slot = None

    # ------------------------------------------------------------------ classification
    def _classify_batch(self, batch: list[_ClassifyRequest]) -> None:
        if not batch:
            return
        try:
            width = max(len(r.input_ids) for r in batch)
            ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, request in enumerate(batch):
                ids[i, : len(request.input_ids)] = torch.tensor(request.input_ids)
                mask[i, : len(request.input_ids)] = 1
            with torch.inference_mode(), self.slots.route([r.slot for r in batch]):
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            probs = torch.softmax(logits.float(), dim=-1).cpu()
            self.counters["forwards"] += 1
            self.counters["rows"] += len(batch)
            base_labels = self.model.config.id2label
            for request, row in zip(batch, probs, strict=True):
                names = self._labels.get(request.adapter) if request.adapter is not None else None
                if names is None:
                    names = tuple(base_labels[i] for i in range(row.shape[0]))
                label_id = int(row[: len(names)].argmax())
                request.future.set_result(ClassificationResult(
                    label=names[label_id], label_id=label_id,
                    probabilities={names[i]: float(row[i]) for i in range(len(names))}, adapter=request.adapter,
                    slot=request.slot, input_tokens=len(request.input_ids),
                ))
            self.counters["completed"] += len(batch)
        except Exception as exc:  # noqa: BLE001 - a failed batch must fail its requests, not the loop
            error = exc if isinstance(exc, EngineError) else EngineError(f"classification failed: {exc}")
            for request in batch:
                request.fail(error)
        finally:
            self._release(batch)

    # ------------------------------------------------------------------ generation
    def _generation_step(self, joiners: list[_GenerateRequest]) -> None:
        try:
            if joiners:
                self._prefill(joiners)
                self._retire([r for r in self._running if r.finish_reason], None)
            if self._running:
                self._decode()
                self._retire([r for r in self._running if r.finish_reason], None)
        except Exception as exc:  # noqa: BLE001 - fail the affected rows and keep serving
            error = exc if isinstance(exc, EngineError) else EngineError(f"generation failed: {exc}")
            rows = self._running + [j for j in joiners if j not in self._running]
            for request in rows:
                request.fail(error)
            self._release(rows)
            self._running, self._kv, self._kv_mask = [], None, None

    def _forward(self, requests: Sequence[_GenerateRequest], ids: torch.Tensor, mask: torch.Tensor,
                 positions: torch.Tensor, cache: DynamicCache):
        with torch.inference_mode(), self.slots.route([r.slot for r in requests]):
            out = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device), cache=cache, use_cache=True, logits_to_keep=1,
            )
        self.counters["forwards"] += 1
        self.counters["rows"] += len(requests)
        return out.logits[:, -1].float().cpu(), out.cache

    def _prefill(self, joiners: list[_GenerateRequest]) -> None:
        """Run the joiners' prompts (left-padded) and merge their KV cache into the running batch."""
        width = max(len(r.prompt_ids) for r in joiners)
        ids = torch.full((len(joiners), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(joiners), width), dtype=torch.long)
        for i, request in enumerate(joiners):
            ids[i, width - len(request.prompt_ids):] = torch.tensor(request.prompt_ids)
            mask[i, width - len(request.prompt_ids):] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        logits, cache = self._forward(joiners, ids, mask, positions, DynamicCache())
        self._merge_kv(cache, mask.to(self.device))
        self._running.extend(joiners)
        for request, row in zip(joiners, logits, strict=True):
            request.position = len(request.prompt_ids)
            self._emit(request, request.sampler(row))

    def _decode(self) -> None:
        rows = self._running
        ids = torch.tensor([[r.next_token] for r in rows], dtype=torch.long)
        positions = torch.tensor([[r.position] for r in rows], dtype=torch.long)
        mask = torch.cat([self._kv_mask, torch.ones((len(rows), 1), dtype=torch.long, device=self.device)], dim=1)
        logits, self._kv = self._forward(rows, ids, mask, positions, self._kv)
        self._kv_mask = mask
        for request, row in zip(rows, logits, strict=True):
            request.position += 1
            self._emit(request, request.sampler(row))

    def _emit(self, request: _GenerateRequest, token: int) -> None:
        request.next_token = token
        request.generated_ids.append(token)
        request.completion_tokens += 1
        self.counters["generated_tokens"] += 1
        if token in self._eos_ids:
            request.finish_reason = "stop"
            return
        request.stream._push(request.tracker.add(token))
        if request.tracker.stopped:
            request.finish_reason = "stop"
        elif request.completion_tokens >= request.params.max_tokens:
            request.finish_reason = "length"

    def _retire(self, finished: list[_GenerateRequest], reason: str | None) -> bool:
        """Remove finished (or cancelled, when ``reason`` is given) rows and compact the KV cache."""
        if not finished:
            return False
        for request in finished:
            request.stream._push(request.tracker.finish())
            request.stream._finish(GenerationResult(
                text=request.tracker.text, finish_reason=reason or request.finish_reason,
                prompt_tokens=len(request.prompt_ids), completion_tokens=request.completion_tokens,
                adapter=request.adapter, seed=request.sampler.seed, token_ids=tuple(request.generated_ids),
                slot=request.slot,
            ))
        self.counters["completed"] += len(finished)
        self._release(finished)
        gone = set(map(id, finished))
        keep = [i for i, r in enumerate(self._running) if id(r) not in gone]
        self._running = [self._running[i] for i in keep]
        if not keep:
            self._kv = self._kv_mask = None
            return True
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self._kv_mask.index_select(0, index)
        # Drop leading columns that are padding for every remaining row: less attention work.
        start = int(mask.any(dim=0).nonzero()[0])
        self._kv_mask = mask[:, start:]
        self._kv = DynamicCache(ddp_cache_data=[
            (layer.keys.index_select(0, index)[:, :, start:], layer.values.index_select(0, index)[:, :, start:])
            for layer in self._kv.layers
        ])
        return True

    def _merge_kv(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        if self._kv is None:
            self._kv, self._kv_mask = cache, mask
            return
        width = max(self._kv_mask.shape[1], mask.shape[1])

        def left_pad(tensor: torch.Tensor, dim: int) -> torch.Tensor:
            missing = width - tensor.shape[dim]
            if missing == 0:
                return tensor
            shape = list(tensor.shape)
            shape[dim] = missing
            return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

        self._kv = DynamicCache(ddp_cache_data=[
            (torch.cat([left_pad(old.keys, 2), left_pad(new.keys, 2)]),
             torch.cat([left_pad(old.values, 2), left_pad(new.values, 2)]))
            for old, new in zip(self._kv.layers, cache.layers, strict=True)
        ])
        self._kv_mask = torch.cat([left_pad(self._kv_mask, 1), left_pad(mask, 1)])
