"""Scoring queries against fp16 rows (Ψ shards, the contributor matrix): attribution's hot loop.

One query against ``n`` stored rows is a matrix-vector product that reads ``2·n·k`` bytes and does
``n·k`` multiply-adds, so it should take as long as reading the bytes. On CUDA ``torch.mv``
(cuBLAS) does. On the CPU, torch's fp16 matrix-vector kernel measured 1.5-1.6× the time of a bare
read of the same bytes (one thread, AVX-512, 100k-1M rows at k=1024): it is compute-bound, not
memory-bound. The same product written as a fused multiply-and-row-sum and compiled by
TorchInductor reads each fp16 row once, converts it in registers and accumulates in fp32; it
measured 1.15-1.25× the read. So the CPU path uses that compiled kernel (``kernel="auto"``).

Compilation happens once per process, on first use (a few seconds cold, well under one with
Inductor's on-disk cache warm); shapes are dynamic, so every shard size and every ``k`` share one
compiled kernel. If compiling is impossible here (no C++ toolchain, say) the first failure is
logged and the process falls back to ``torch.mv`` for good: slower, same results up to fp16
rounding of the scores.

Determinism: each row's score is computed by the same vector loop over ``k`` whatever the number
of rows in the call, so a row's score does not depend on which shard it sits in, and scoring shard
ranges separately gives bit-for-bit the scores of one full scan.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

import torch

logger = logging.getLogger(__name__)

ScanKernel = Literal["auto", "compiled", "mv"]
# From this many queries on, converting cache-sized chunks of Ψ to fp32 and sharing one GEMM beats
# one pass per query: the index is read once for all of them.
_BATCHED_SCAN_MIN_QUERIES = 8
_SCAN_CHUNK_ROWS = 2048


def _fused_rows_dot(psi: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``[n, k] fp16 · [k] fp32 → [n] fp32``, written so Inductor fuses convert, multiply and sum."""
    return (psi.float() * query).sum(dim=1)


def _fused_gathered_rows_dot(psi: torch.Tensor, positions: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``psi[positions] · query``: Inductor turns the gather into an indirect load inside the same loop, so
    each picked row is read once and never copied to a buffer."""
    return (psi[positions].float() * query).sum(dim=1)


class _CompiledKernel:
    """A compiled CPU kernel, created lazily; disabled for the process after a compile failure."""

    def __init__(self, function=_fused_rows_dot):
        self._source = function
        self._function = None
        self._warm = False
        self.failure: str | None = None
        self._lock = threading.Lock()

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor | None:
        """Scores, or ``None`` when the compiled kernel is unavailable (caller falls back)."""
        if self.failure is not None:
            return None
        if self._warm:
            return self._run(*tensors)
        with self._lock:  # one thread compiles; the others wait for it rather than compile again
            if self._function is None:
                self._function = torch.compile(self._source, dynamic=True, fullgraph=True)
            result = self._run(*tensors)
            self._warm = result is not None
            return result

    def _run(self, *tensors: torch.Tensor) -> torch.Tensor | None:
        try:
            return self._function(*tensors)
        except Exception as error:  # noqa: BLE001 - compiler/toolchain failures come in many types
            self.failure = f"{type(error).__name__}: {error}"
            logger.warning("compiled attribution scan unavailable, using torch.mv instead: %s", self.failure)
            return None


_compiled_kernel = _CompiledKernel()
_compiled_gather_kernel = _CompiledKernel(_fused_gathered_rows_dot)


def compiled_kernel_failure() -> str | None:
    """Why the compiled CPU kernel is disabled in this process, or ``None`` if it is not."""
    return _compiled_kernel.failure


def gathered_scores(psi: torch.Tensor, positions: torch.Tensor, query: torch.Tensor,
                    kernel: ScanKernel = "auto") -> torch.Tensor:
    """``psi [n, k]`` fp16 rows at ``positions [m]`` (int64) ``· query [k]`` → ``[m]`` float32.

    The share policy scores the rows of the credit groups it pays: a few thousand rows scattered over the
    shards. Gathering them into a buffer and scanning it read and wrote every byte twice; the compiled
    kernel reads each picked row once. Same per-row loop as ``scan_scores``, so the scores are bit for
    bit those of a full scan (tests/engine_attribution).
    """
    if kernel not in ("auto", "compiled", "mv"):
        raise ValueError(f"unknown scan kernel {kernel!r}")
    query = query.to(device=psi.device, dtype=torch.float32).reshape(-1).contiguous()
    if positions.numel() == 0:
        return torch.empty(0, device=psi.device)
    if kernel != "mv" and psi.device.type == "cpu" and psi.dtype == torch.float16:
        scores = _compiled_gather_kernel(psi, positions, query)
        if scores is not None:
            return scores
        if kernel == "compiled":
            raise RuntimeError(f"compiled gather kernel unavailable: {_compiled_gather_kernel.failure}")
    return _one_query(torch.index_select(psi, 0, positions), query, kernel)


def _mv_scores(psi: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """torch's fp16 matrix-vector kernel. The query is scaled to max-abs 1 first (gradients can sit
    far below fp16's normal range) and the scale is restored after."""
    scale = query.abs().amax().clamp_min(torch.finfo(torch.float32).tiny)
    return torch.mv(psi, (query / scale).to(psi.dtype)).float() * scale


def _one_query(psi: torch.Tensor, query: torch.Tensor, kernel: ScanKernel) -> torch.Tensor:
    if kernel != "mv" and psi.device.type == "cpu" and psi.dtype == torch.float16:
        scores = _compiled_kernel(psi, query)
        if scores is not None:
            return scores
        if kernel == "compiled":
            raise RuntimeError(f"compiled scan kernel unavailable: {_compiled_kernel.failure}")
    return _mv_scores(psi, query)


def scan_scores(psi: torch.Tensor, queries: torch.Tensor, kernel: ScanKernel = "auto") -> torch.Tensor:
    """``psi [n, k]`` (fp16) ``· queries [Q, k]`` → ``[Q, n]`` float32 scores.

    Fewer than ``_BATCHED_SCAN_MIN_QUERIES`` queries: one memory-bound pass per query (module
    docstring; ``kernel`` picks the CPU kernel, ``"mv"`` forces torch's). More: cache-sized chunks
    of ``psi`` are converted to fp32 once and multiplied with all queries in one GEMM.
    """
    if psi.dim() != 2 or queries.dim() != 2 or queries.shape[1] != psi.shape[1]:
        raise ValueError(f"cannot score queries {tuple(queries.shape)} against rows {tuple(psi.shape)}")
    if kernel not in ("auto", "compiled", "mv"):
        raise ValueError(f"unknown scan kernel {kernel!r}")
    queries = queries.to(device=psi.device, dtype=torch.float32)
    if queries.shape[0] == 1:
        return _one_query(psi, queries[0].contiguous(), kernel).unsqueeze(0)
    if queries.shape[0] < _BATCHED_SCAN_MIN_QUERIES:
        return torch.stack([_one_query(psi, q.contiguous(), kernel) for q in queries])
    out = torch.empty(queries.shape[0], psi.shape[0], device=psi.device)
    buffer = torch.empty(min(_SCAN_CHUNK_ROWS, psi.shape[0]), psi.shape[1], device=psi.device)
    transposed = queries.T.contiguous()
    for start in range(0, psi.shape[0], _SCAN_CHUNK_ROWS):
        chunk = buffer[: min(_SCAN_CHUNK_ROWS, psi.shape[0] - start)]
        chunk.copy_(psi[start : start + chunk.shape[0]])
        out[:, start : start + chunk.shape[0]] = (chunk @ transposed).T
    return out
