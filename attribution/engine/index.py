"""The attribution index, as read: preconditioned projected training gradients, sharded on disk.

``build.py`` writes it (its docstring explains each step: projected gradients, damped curvature,
Ψ = Φ F⁻¹ in fp16, the credit structure of ``credit.py``, the contributor matrix). This module opens it
and scores queries against it.

Scores: ``score(q, i) = q_gradᵀ F⁻¹ g_i`` ≈ the decrease of the query's loss caused by training on
row ``i`` (= minus its influence on the query loss). Positive = the row supported the output. One
damping serves every score: the rows a receipt lists are scored exactly as the payout scored them.

Storage: ``manifest.json`` + ``shard_00000.safetensors``... + ``credit.safetensors`` +
``contributors.safetensors``. The index hash is the sha256 of the canonical manifest JSON, which itself
lists every file's sha256, so it pins every byte. ``verify()`` recomputes all of it.

Scoring memory-maps the shards and scans them in place (``scan.py``: one fused fp16 pass per query),
and ``score_shard_range`` is a pure function of the index files and the queries, so several
workers can each score a shard range and ``merge_top_rows`` their results.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from .canonical import canonical_sha256, file_sha256
from .gradients import GradientBlock
from .layout import CONTRIBUTORS_NAME, CREDIT_NAME, MANIFEST_NAME
from .projection import ProjectionSpec
from .scan import gathered_scores, scan_scores
from .shares import ContributorShares, account_shares


@dataclass(frozen=True)
class RowScore:
    row_id: str
    contributor_id: str
    score: float


@dataclass(frozen=True)
class TopRows:
    """Best rows per query for one shard range: ``positions`` are global row positions."""

    scores: torch.Tensor  # [Q, m] float32, descending
    positions: torch.Tensor  # [Q, m] int64


@dataclass
class VerificationReport:
    ok: bool
    index_hash: str
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CreditTables:
    """The credit file of an index, as arrays (credit.py explains each)."""

    group_matrix: torch.Tensor  # [G, k] fp16; true = stored × group_matrix_scale
    group_matrix_scale: float
    group_noise: np.ndarray  # [G] noise scale of norm-divided group scores
    row_group: np.ndarray  # [n] group of each row
    row_credit: np.ndarray  # [n] 1 = earns credit; 0 = a later duplicate or a harmful row
    row_fallback: np.ndarray  # [n] weights that pay an empty attribution
    row_values: np.ndarray  # [n] value on the evaluation split (zeros when not valued)
    row_self_influence: np.ndarray  # [n] φᵀF⁻¹φ: rows share a paid group by score / √(self-influence)
    group_rows: np.ndarray  # row positions sorted by group; group g is group_rows[offsets[g]:offsets[g+1]]
    group_offsets: np.ndarray
    row_owner: np.ndarray  # [n] position of each row's contributor in ``contributors``
    # [C] standard error of each contributor's net value over the evaluation queries (None: not valued, or an
    # index built before it was measured)
    contributor_value_se: np.ndarray | None = None


_SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


def memory_mapped_tensor(path: Path, key: str) -> torch.Tensor:
    """Tensor ``key`` of a safetensors file as a copy-on-write memory map (no read, no copy).

    The safetensors layout is an 8-byte little-endian header length, a JSON header giving each
    tensor's dtype, shape and byte range, then the data. Writes to the tensor (none are made)
    would stay private to this process.
    """
    with open(path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size))
    entry = header.get(key)
    if entry is None or entry.get("dtype") not in _SAFETENSORS_DTYPES:
        raise ValueError(f"{path.name}: no memory-mappable tensor {key!r}")
    dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
    shape = tuple(entry["shape"])
    begin, end = entry["data_offsets"]
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{path.name}: tensor {key!r} has a byte range that does not match its shape")
    return torch.from_numpy(np.memmap(path, dtype=dtype, mode="c", offset=8 + header_size + begin, shape=shape))


def _top_rows(scores: torch.Tensor, offset: int, top_k: int) -> TopRows:
    m = min(top_k, scores.shape[1])
    values, positions = torch.topk(scores, m, dim=1)
    return TopRows(values, positions + offset)


def merge_top_rows(parts: Sequence[TopRows], top_k: int) -> TopRows:
    """Merge per-range results into the global top ``top_k`` (ties broken by lower position)."""
    scores = torch.cat([p.scores for p in parts], dim=1)
    positions = torch.cat([p.positions for p in parts], dim=1)
    # Sort by position first so that a stable sort by score breaks ties deterministically.
    by_position = torch.argsort(positions, dim=1, stable=True)
    scores, positions = scores.gather(1, by_position), positions.gather(1, by_position)
    order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :top_k]
    return TopRows(scores.gather(1, order), positions.gather(1, order))


class AttributionIndex:
    """Read access to a built index. Cheap to open: shards are read only when scored.

    ``keep_in_memory=True`` caches shards after their first read (a serving process); the default
    streams them so an index larger than RAM can be scored.
    """

    def __init__(self, directory: Path | str, keep_in_memory: bool = False):
        self.directory = Path(directory)
        raw = (self.directory / MANIFEST_NAME).read_bytes()
        self.manifest: dict = json.loads(raw)
        self.index_hash = canonical_sha256(self.manifest)
        self.keep_in_memory = keep_in_memory
        self._shard_cache: dict[int, tuple[torch.Tensor, float]] = {}
        self._contributor_matrix: tuple[torch.Tensor, float] | None = None
        self._credit: CreditTables | None = None
        self._fallback: ContributorShares | None = None
        self._fallback_rows = 0
        self._shard_starts: np.ndarray | None = None

    @property
    def k(self) -> int:
        return self.manifest["projection"]["k"]

    @property
    def projection(self) -> ProjectionSpec:
        p = self.manifest["projection"]
        return ProjectionSpec(seed=p["seed"], k=p["k"], kind=p["kind"])

    def projection_bases(self) -> dict | None:
        """The fitted eigenbasis of an ``eigenbasis`` index (eigenbasis.py), None for a seeded projection."""
        entry = self.manifest.get("projection_file")
        if entry is None:
            return None
        from .eigenbasis import load_bases

        return load_bases(self.directory / entry["file"], self.blocks)

    @property
    def blocks(self) -> list[GradientBlock]:
        return [GradientBlock(**b) for b in self.manifest["blocks"]]

    @property
    def method(self) -> dict:
        return self.manifest["method"]

    @property
    def row_ids(self) -> list[str]:
        return self.manifest["row_ids"]

    @property
    def row_contributor_ids(self) -> list[str]:
        return self.manifest["row_contributor_ids"]

    @property
    def contributors(self) -> list[str]:
        return self.manifest["contributors"]

    @property
    def num_rows(self) -> int:
        return len(self.manifest["row_ids"])

    @property
    def num_shards(self) -> int:
        return len(self.manifest["shards"])

    def shard(self, number: int) -> tuple[torch.Tensor, float]:
        """Shard ``number`` as (fp16 Ψ rows, scale); true Ψ = rows × scale.

        The rows are a copy-on-write memory map of the shard file (no copy: scanning reads the page
        cache directly, and an index larger than RAM pages in and out as it is scanned), or with
        ``keep_in_memory`` a private copy that stays resident.
        """
        cached = self._shard_cache.get(number)
        if cached is not None:
            return cached
        path = self.directory / self.manifest["shards"][number]["file"]
        psi = memory_mapped_tensor(path, "psi")
        loaded = (psi.clone() if self.keep_in_memory else psi, float(memory_mapped_tensor(path, "scale")[0]))
        self._shard_cache[number] = loaded
        return loaded

    def score_shard_range(self, queries: torch.Tensor, first_shard: int, stop_shard: int, top_k: int) -> TopRows:
        """Top ``top_k`` rows per query among shards ``[first_shard, stop_shard)``."""
        parts = []
        for number in range(first_shard, stop_shard):
            psi, scale = self.shard(number)
            # The scale is a power of two, so folding it into the queries is exact and saves a pass.
            parts.append(_top_rows(scan_scores(psi, queries * scale), self.manifest["shards"][number]["start"], top_k))
        return merge_top_rows(parts, top_k)

    def top_rows(self, queries: torch.Tensor, top_k: int) -> TopRows:
        """Exact top ``top_k`` rows per query: a scan of every shard."""
        return self.score_shard_range(queries, 0, self.num_shards, top_k)

    def probed_top_rows(self, query: torch.Tensor, group_scores: np.ndarray, top_k: int, probe_groups: int) -> TopRows:
        """Top ``top_k`` rows of one query ``[k]`` among the rows of its ``probe_groups`` highest-scoring credit
        groups (an inverted-file search: the credit groups are k-means cells of the gradients, and a row that
        supports an answer lifts its group's score). Reads those rows only, not the index."""
        tables = self.credit()
        probed = np.argsort(-group_scores, kind="stable")[:probe_groups]
        positions = np.sort(np.concatenate([tables.group_rows[tables.group_offsets[g]:tables.group_offsets[g + 1]]
                                            for g in probed.tolist()]))
        scores = torch.from_numpy(self.row_scores(positions, query)).float()
        m = min(top_k, scores.numel())
        # Ties by lower position, as the full scan's merge breaks them.
        order = torch.argsort(scores, descending=True, stable=True)[:m]
        return TopRows(scores[order].view(1, -1), torch.from_numpy(positions)[order].view(1, -1))

    def all_scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Every row's score ``[Q, n]`` (valuation, evaluation harnesses)."""
        parts = []
        for number in range(self.num_shards):
            psi, scale = self.shard(number)
            parts.append(scan_scores(psi, queries * scale))
        return torch.cat(parts, dim=1)

    def contributor_matrix(self) -> tuple[torch.Tensor, float]:
        """(fp16 matrix ``[n_contributors, k]``, scale); true matrix = stored × scale."""
        if self._contributor_matrix is None:
            with safe_open(str(self.directory / CONTRIBUTORS_NAME), framework="pt") as handle:
                self._contributor_matrix = (handle.get_tensor("matrix"), float(handle.get_tensor("scale")[0]))
        return self._contributor_matrix

    def contributor_scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Net score per contributor ``[Q, n_contributors]`` (order: ``contributors``): the plain sum of its rows'
        scores, i.e. the linear estimate of what removing all its rows would do to each answer's loss."""
        matrix, scale = self.contributor_matrix()
        return scan_scores(matrix, queries * scale)

    def credit(self) -> CreditTables:
        """The credit structure (groups, row credit weights, noise scales, fallback weights), loaded once."""
        if self._credit is None:
            with safe_open(str(self.directory / CREDIT_NAME), framework="pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            groups = tensors["row_group"].numpy()
            order = np.argsort(groups, kind="stable")
            position = {c: i for i, c in enumerate(self.contributors)}
            self._credit = CreditTables(
                group_matrix=tensors["group_matrix"], group_matrix_scale=float(tensors["group_matrix_scale"][0]),
                group_noise=tensors["group_noise"].numpy(), row_group=groups, row_credit=tensors["row_credit"].numpy(),
                row_fallback=tensors["row_fallback"].numpy(), row_values=tensors["row_values"].numpy(),
                row_self_influence=tensors["row_self_influence"].numpy(),
                group_rows=order, group_offsets=np.r_[0, np.bincount(groups, minlength=self.manifest["credit"]["groups"])
                                                       .cumsum()],
                row_owner=np.array([position[c] for c in self.row_contributor_ids], dtype=np.int64),
                contributor_value_se=(tensors["contributor_value_se"].numpy() if "contributor_value_se" in tensors
                                      else None),
            )
        return self._credit

    def group_scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Credit-weighted score of every credit group ``[Q, n_groups]``."""
        tables = self.credit()
        return scan_scores(tables.group_matrix, queries * tables.group_matrix_scale)

    def row_scores(self, positions: np.ndarray, query: torch.Tensor) -> np.ndarray:
        """Scores ``[len(positions)]`` float64 of one query ``[k]`` against the stored rows at ``positions``:
        one call of the gather kernel per shard touched (``scan.gathered_scores``), which reads each picked
        fp16 row once, without a copy of it. A receipt scores a few thousand rows from several shards."""
        if positions.size == 0:
            return np.empty(0)
        if self._shard_starts is None:
            self._shard_starts = np.array([shard["start"] for shard in self.manifest["shards"]])
        starts = self._shard_starts
        shard_of = np.searchsorted(starts, positions, side="right") - 1
        order = np.argsort(shard_of, kind="stable")
        sorted_shards = shard_of[order]
        numbers, first = np.unique(sorted_shards, return_index=True)
        bounds = np.r_[first, positions.size]
        local = torch.from_numpy(positions[order] - starts[sorted_shards])
        query = query.float().reshape(-1)
        scored = np.empty(positions.size)
        for number, start, stop in zip(numbers.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
            psi, scale = self.shard(number)
            scored[start:stop] = gathered_scores(psi, local[start:stop], query).double().numpy() * scale
        out = np.empty(positions.size)
        out[order] = scored
        return out

    def fallback_shares(self, rows_per_contributor: int = 10, reason: str | None = None) -> ContributorShares:
        """Shares that pay an empty attribution: the training data pro rata to its positive value on the
        evaluation split (credit-weighted), or to credit-weighted rows without one (shares.py).
        Computed once per index; ``reason`` (why the attribution was empty) is attached to a copy."""
        if self._fallback is None or self._fallback_rows != rows_per_contributor:
            tables = self.credit()
            self._fallback = account_shares(
                row_positions=np.arange(self.num_rows), row_credit=tables.row_fallback, row_owner=tables.row_owner,
                contributors=self.contributors, row_ids=self.row_ids, rows_per_contributor=rows_per_contributor,
                negative={}, basis=self.manifest["credit"]["fallback_basis"])
            self._fallback_rows = rows_per_contributor
        return replace(self._fallback, reason=reason)

    def row_score(self, position: int, score: float) -> RowScore:
        return RowScore(self.row_ids[position], self.row_contributor_ids[position], score)

    def verify(self, expected_index_hash: str | None = None) -> VerificationReport:
        """Recompute every file hash and the index hash; report each mismatch."""
        problems = []
        files = [*self.manifest["shards"], self.manifest["credit_file"], self.manifest["contributors_file"],
                 *([self.manifest["projection_file"]] if "projection_file" in self.manifest else [])]
        for entry in files:
            path = self.directory / entry["file"]
            if not path.exists():
                problems.append(f"{entry['file']}: missing")
            elif file_sha256(path) != entry["sha256"]:
                problems.append(f"{entry['file']}: sha256 mismatch")
        current_hash = canonical_sha256(json.loads((self.directory / MANIFEST_NAME).read_bytes()))
        if current_hash != self.index_hash:
            problems.append("manifest changed since the index was opened")
        if expected_index_hash is not None and current_hash != expected_index_hash:
            problems.append("index hash differs from the expected hash")
        return VerificationReport(not problems, current_hash, problems)
