"""The attribution index: preconditioned projected training gradients, sharded on disk.

Build (``IndexBuilder`` / ``build_index``)
    1. Each training row ``i`` gets a projected gradient ``φ_i`` (``k`` dims) of its training loss.
    2. Curvature in projected space: ``F = Σ w_i C_i / Σ w_i + λI``, where ``C_i`` is ``φ_i φ_iᵀ``
       (``curvature="empirical_fisher"``, free) or the row's true-Fisher / Gauss-Newton term
       (``curvature="fisher"``, expectation over the model's own predictions; one extra backward per
       class or sample, and measurably better rankings on the ground-truth harness).
       ``w_i = 1 / |duplicate cluster of i|`` so planting copies distorts neither credit nor curvature.
    3. Damping rule: ``λ = damping_ratio × trace(F₀) / k``, i.e. a fraction of the mean eigenvalue
       of the undamped curvature (for the empirical Fisher: of the mean squared gradient norm / k).
       Default 0.1; 1e-2..1e-1 worked in measurements here. It keeps ``F`` invertible when
       ``n < k`` and stops tiny-eigenvalue directions (noise) from dominating scores. With fewer
       curvature rows ``R`` than ``k`` the inverse goes through the ``R × R`` Gram matrix (Woodbury)
       instead of a ``k × k`` factorisation; both paths are tested against a dense solve.
    4. ``Ψ = Φ F⁻¹`` is stored in fp16 (per-shard power-of-two scale so values sit near 1, away
       from fp16 underflow); a query's score for row ``i`` is then one dot product ``Ψ_i · q``.
    5. Contributor matrix: row ``c`` = ``Σ_{i of c} w_i Ψ'_i`` (cluster-weighted, fp16 like Ψ), so
       all per-contributor scores for a query are one small matrix-vector product. ``Ψ'`` is ``Φ``
       preconditioned with its own damping ``λ' = contributor_damping_ratio × trace(F₀) / k``
       (``None``: ``λ' = λ`` and the matrix sums the stored Ψ rows exactly). Why two: a row ranking
       and a payout ask different questions. "Which rows is this output most like?" wants light
       damping, so each row's own directions stand out (a training row fed back ranks itself first;
       an exact copy dominates its contributor). "What would removing this contributor's rows
       change?" is about a *set* of rows, and for a set the lightly damped low-curvature directions,
       which a few epochs of fine-tuning never fit, add up to noise. Measured on MiniLM LoRA
       (``bench/attribution_lora.py``: LDS over 50% subsets, i.e. the set question) with row damping
       0.01: contributor ratio 0.01 → LDS 0.21, 0.03 → 0.26, 0.1 → 0.33, 0.3 → 0.42, 1.0 → 0.53. The
       price of heavy damping is row salience inside a contributor's total: from 0.2 up, a planted
       exact copy of a small contributor's row stopped reliably out-scoring a large contributor's
       same-label rows (tests/attribution), so the platform uses 0.1 (lineage/settings.py).

Scores: ``score(q, i) = q_gradᵀ F⁻¹ g_i`` ≈ the decrease of the query's loss caused by training on
row ``i`` (= minus its influence on the query loss). Positive = the row supported the output.

Storage: ``manifest.json`` + ``shard_00000.safetensors``... + ``contributors.safetensors``. The
index hash is the sha256 of the canonical manifest JSON, which itself lists every file's sha256,
so it pins every byte. ``verify()`` recomputes all of it.

Scoring memory-maps the shards and scans them in place (``scan.py``: one fused fp16 pass per query),
and ``score_shard_range`` is a pure function of the index files and the queries, so several
workers can each score a shard range and ``merge_top_rows`` their results.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .canonical import canonical_json, canonical_sha256, file_sha256
from .gradients import GradientBlock, GradientFeaturizer, TokenReduction
from .layout import CONTRIBUTORS_NAME, FORMAT_VERSION, MANIFEST_NAME
from .projection import BlockProjector, ProjectionSpec
from .scan import scan_scores

CurvatureKind = Literal["empirical_fisher", "fisher"]
_SPILL_DIR = ".build"


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index. Everything here is recorded in the manifest."""

    projection: ProjectionSpec
    curvature: CurvatureKind = "empirical_fisher"
    damping_ratio: float = 0.1
    # Damping of the contributor matrix (payout scores); None = the row damping. Module docstring, step 5.
    contributor_damping_ratio: float | None = None
    token_reduction: TokenReduction = "sum"
    fisher_samples: int = 1
    shard_rows: int = 65536

    def __post_init__(self):
        for name in ("damping_ratio", "contributor_damping_ratio"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")

    def for_contributor_scores(self) -> IndexConfig:
        """The config whose Ψ rows are the rows this config's contributor matrix sums: scoring any set
        of rows the way payouts score a contributor (benchmarks measure LDS on these)."""
        ratio = self.damping_ratio if self.contributor_damping_ratio is None else self.contributor_damping_ratio
        return replace(self, damping_ratio=ratio, contributor_damping_ratio=None)


@dataclass
class TrainingBatch:
    """A batch of tokenised training rows and who owns them.

    ``cluster_ids[i]`` names row ``i``'s near-duplicate cluster (``None`` = unique). Rows sharing a
    cluster id split one row's worth of credit and curvature.
    """

    inputs: Mapping[str, torch.Tensor]
    row_ids: Sequence[str]
    contributor_ids: Sequence[str]
    cluster_ids: Sequence[str | None] | None = None


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


class IndexBuilder:
    """Accumulates projected gradients, then writes the preconditioned, sharded index.

    Projected gradients are spilled to ``<directory>/.build`` in chunks of ``shard_rows`` so the
    build needs memory for one chunk plus the ``k × k`` curvature, not for the whole index.
    """

    def __init__(self, directory: Path | str, config: IndexConfig, blocks: Sequence[GradientBlock], model_hash: str):
        self.directory = Path(directory)
        if (self.directory / MANIFEST_NAME).exists():
            raise FileExistsError(f"an index already exists at {self.directory}")
        self.config = config
        self.blocks = list(blocks)
        self.model_hash = model_hash
        self._spill = self.directory / _SPILL_DIR
        self._spill.mkdir(parents=True, exist_ok=True)
        self._pending_features: list[torch.Tensor] = []
        self._pending_curvature: list[torch.Tensor] = []
        self._pending_rows = 0
        self._spill_files: list[Path] = []
        self.row_ids: list[str] = []
        self.contributor_ids: list[str] = []
        self.cluster_ids: list[str | None] = []

    def add(
        self,
        features: torch.Tensor,
        row_ids: Sequence[str],
        contributor_ids: Sequence[str],
        cluster_ids: Sequence[str | None] | None = None,
        curvature_rows: torch.Tensor | None = None,
    ) -> None:
        """Add ``[B, k]`` projected gradients; ``curvature_rows`` ``[B, R, k]`` if not the features."""
        batch = features.shape[0]
        if not (len(row_ids) == len(contributor_ids) == batch):
            raise ValueError("row_ids, contributor_ids and features must have the same length")
        if cluster_ids is not None and len(cluster_ids) != batch:
            raise ValueError("cluster_ids must have one entry per row")
        if features.shape[1] != self.config.projection.k:
            raise ValueError(f"features have {features.shape[1]} dims, index k={self.config.projection.k}")
        self.row_ids.extend(map(str, row_ids))
        self.contributor_ids.extend(map(str, contributor_ids))
        self.cluster_ids.extend([None if c is None else str(c) for c in cluster_ids] if cluster_ids else [None] * batch)
        self._pending_features.append(features.detach().float().cpu())
        if curvature_rows is not None:
            self._pending_curvature.append(curvature_rows.detach().float().cpu())
        self._pending_rows += batch
        if self._pending_rows >= self.config.shard_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        tensors = {"features": torch.cat(self._pending_features)}
        if self._pending_curvature:
            tensors["curvature"] = torch.cat(self._pending_curvature)
        path = self._spill / f"chunk_{len(self._spill_files):05d}.safetensors"
        save_file(tensors, str(path))
        self._spill_files.append(path)
        self._pending_features, self._pending_curvature, self._pending_rows = [], [], 0

    def _spilled_chunks(self) -> Iterable[tuple[int, dict[str, torch.Tensor]]]:
        start = 0
        for path in self._spill_files:
            with safe_open(str(path), framework="pt") as handle:
                chunk = {key: handle.get_tensor(key) for key in handle.keys()}
            yield start, chunk
            start += chunk["features"].shape[0]

    def _row_weights(self) -> torch.Tensor:
        sizes: dict[str, int] = {}
        for cluster in self.cluster_ids:
            if cluster is not None:
                sizes[cluster] = sizes.get(cluster, 0) + 1
        return torch.tensor(
            [1.0 if c is None else 1.0 / sizes[c] for c in self.cluster_ids], dtype=torch.float64
        )

    def _damping(self, trace: float, ratio: float | None = None) -> float:
        """λ = ratio × trace(F₀) / k (module docstring, steps 3 and 5); ratio defaults to ``damping_ratio``."""
        if trace <= 0:
            raise ValueError("curvature is zero: the model's gradients vanish on every training row")
        return (self.config.damping_ratio if ratio is None else ratio) * trace / self.config.projection.k

    def finalize(self) -> AttributionIndex:
        """Compute the damped curvature, write Ψ shards, contributor matrix and manifest."""
        self._flush()
        if not self.row_ids:
            raise ValueError("cannot build an empty index")
        if len(set(self.row_ids)) != len(self.row_ids):
            raise ValueError("row ids must be unique")
        k = self.config.projection.k
        weights = self._row_weights()
        # C: curvature rows scaled so that F₀ = CᵀC (cluster weights, normalised to a mean). F₀ is
        # accumulated chunk by chunk; the rows themselves are kept only while there are fewer than k.
        curvature = torch.zeros(k, k, dtype=torch.float64)
        kept_rows: list[torch.Tensor] = []
        for start, chunk in self._spilled_chunks():
            rows = chunk.get("curvature", chunk["features"].unsqueeze(1)).double()
            w = weights[start : start + rows.shape[0]] / weights.sum()
            scaled = (rows * w.sqrt().view(-1, 1, 1)).reshape(-1, k)
            curvature += scaled.T @ scaled
            if sum(r.shape[0] for r in kept_rows) < k:
                kept_rows.append(scaled)
        trace = float(torch.trace(curvature))
        damping = self._damping(trace)
        contributor_ratio = self.config.contributor_damping_ratio
        contributor_damping = damping if contributor_ratio is None else self._damping(trace, contributor_ratio)
        c = torch.cat(kept_rows) if sum(r.shape[0] for r in kept_rows) < k else None
        del kept_rows
        precondition = _preconditioner(curvature, c, damping)
        precondition_contributors = (None if contributor_damping == damping
                                     else _preconditioner(curvature, c, contributor_damping))

        contributors = sorted(set(self.contributor_ids))
        contributor_position = {c: i for i, c in enumerate(contributors)}
        row_contributor = torch.tensor([contributor_position[c] for c in self.contributor_ids])
        contributor_matrix = torch.zeros(len(contributors), k, dtype=torch.float64)
        shards = []
        for start, chunk in self._spilled_chunks():
            features = chunk["features"].double()
            psi = precondition(features)
            if precondition_contributors is not None:
                own = slice(start, start + psi.shape[0])
                contributor_matrix.index_add_(0, row_contributor[own],
                                              precondition_contributors(features) * weights[own].view(-1, 1))
            for offset in range(0, psi.shape[0], self.config.shard_rows):
                block = psi[offset : offset + self.config.shard_rows]
                scale = _power_of_two_scale(block)
                stored = (block / scale).to(torch.float16)
                name = f"shard_{len(shards):05d}.safetensors"
                save_file({"psi": stored, "scale": torch.tensor([scale], dtype=torch.float32)},
                          str(self.directory / name))
                first = start + offset
                if precondition_contributors is None:
                    # Credit what is stored (fp16 rows × scale) so contributor scores are the sums
                    # of the row scores a query sees.
                    as_stored = stored.double() * scale
                    rows = slice(first, first + block.shape[0])
                    contributor_matrix.index_add_(0, row_contributor[rows], as_stored * weights[rows].view(-1, 1))
                shards.append({"file": name, "start": first, "rows": block.shape[0],
                               "sha256": file_sha256(self.directory / name)})
        # fp16 like Ψ: per-query contributor scoring is a memory-bound scan of this matrix.
        matrix_scale = _power_of_two_scale(contributor_matrix)
        save_file({"matrix": (contributor_matrix / matrix_scale).to(torch.float16),
                   "scale": torch.tensor([matrix_scale], dtype=torch.float32)},
                  str(self.directory / CONTRIBUTORS_NAME))
        shutil.rmtree(self._spill)

        manifest = {
            "format_version": FORMAT_VERSION,
            "model_hash": self.model_hash,
            "projection": {"k": k, "seed": self.config.projection.seed, "kind": self.config.projection.kind},
            "method": {
                "curvature": self.config.curvature,
                "damping_ratio": self.config.damping_ratio,
                "damping": damping,
                "contributor_damping_ratio": contributor_ratio,
                "contributor_damping": contributor_damping,
                "token_reduction": self.config.token_reduction,
                "fisher_samples": self.config.fisher_samples if self.config.curvature == "fisher" else None,
                "storage": "psi_fp16",
            },
            "blocks": [block.to_json() for block in self.blocks],
            "row_ids": self.row_ids,
            "row_contributor_ids": self.contributor_ids,
            "row_cluster_ids": self.cluster_ids,
            "contributors": contributors,
            "shards": shards,
            "contributors_file": {"file": CONTRIBUTORS_NAME,
                                  "sha256": file_sha256(self.directory / CONTRIBUTORS_NAME)},
        }
        (self.directory / MANIFEST_NAME).write_bytes(canonical_json(manifest))
        return AttributionIndex(self.directory)


_SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


def _preconditioner(curvature: torch.Tensor, rows: torch.Tensor | None, damping: float):
    """``features ↦ features (F₀ + λI)⁻¹`` with ``F₀ = CᵀC``. ``rows`` is C when it has fewer rows than
    dimensions (a small dataset): then the inverse goes through the R×R Gram matrix (Woodbury),
    (CᵀC + λI)⁻¹ = (I - Cᵀ(CCᵀ + λI)⁻¹C)/λ, not a k×k factorisation."""
    if rows is not None:
        gram_factor = torch.linalg.cholesky(rows @ rows.T + damping * torch.eye(rows.shape[0], dtype=torch.float64))

        def precondition(features: torch.Tensor) -> torch.Tensor:
            solved = torch.cholesky_solve((features @ rows.T).T, gram_factor)  # [R, B]
            return (features - solved.T @ rows) / damping
        return precondition
    k = curvature.shape[0]
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(curvature + damping * torch.eye(k, dtype=torch.float64)))

    def precondition(features: torch.Tensor) -> torch.Tensor:
        return features @ inverse
    return precondition


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


def _power_of_two_scale(values: torch.Tensor) -> float:
    """Scale that brings ``values`` to max-abs ≤ 1 for fp16 storage. A power of two is exact in
    floating point, so a row's stored value does not depend on which other rows share its shard
    (adding a duplicate elsewhere cannot re-round existing rows)."""
    return 2.0 ** math.ceil(math.log2(float(values.abs().max()) or 1.0))


def build_index(
    model: torch.nn.Module,
    batches: Iterable[TrainingBatch],
    directory: Path | str,
    config: IndexConfig,
    model_hash: str,
) -> AttributionIndex:
    """Build an index for ``model`` (a peft LoRA model or any model whose trainable layers are
    Linear) over ``batches`` of training rows. ``model_hash`` identifies the model + adapter the
    gradients were taken at; it is recorded and becomes part of the index hash."""
    featurizer = GradientFeaturizer(model, token_reduction=config.token_reduction)
    projector = BlockProjector(featurizer.blocks, config.projection, device=featurizer.device)
    featurizer.projector = projector
    builder = IndexBuilder(directory, config, featurizer.blocks, model_hash)
    for batch in batches:
        features = featurizer.features(batch.inputs)
        curvature_rows = None
        if config.curvature == "fisher":
            curvature_rows = featurizer.fisher_features(
                batch.inputs, samples=config.fisher_samples, seed=config.projection.seed
            )
        elif config.curvature != "empirical_fisher":
            raise ValueError(f"unknown curvature {config.curvature!r}")
        builder.add(features, batch.row_ids, batch.contributor_ids, batch.cluster_ids, curvature_rows)
    return builder.finalize()


def chance_scores(queries: torch.Tensor, contributor_norms: torch.Tensor) -> torch.Tensor:
    """``|q| |Ψ_c| / √k`` ``[Q, n_contributors]`` float64 for queries ``[Q, k]``: the standard deviation of the
    score a contributor row of norm ``|Ψ_c|`` pointing in a random direction would get against each query (the
    share policy's chance floor)."""
    query_norms = torch.linalg.vector_norm(queries.double(), dim=1, keepdim=True)
    return query_norms * contributor_norms.view(1, -1) / math.sqrt(queries.shape[1])


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
        self._contributor_norms: torch.Tensor | None = None

    @property
    def k(self) -> int:
        return self.manifest["projection"]["k"]

    @property
    def projection(self) -> ProjectionSpec:
        p = self.manifest["projection"]
        return ProjectionSpec(seed=p["seed"], k=p["k"], kind=p["kind"])

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
        return self.score_shard_range(queries, 0, self.num_shards, top_k)

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

    def contributor_norms(self) -> torch.Tensor:
        """``|Ψ_c|`` per contributor ``[n_contributors]`` float64 (the chance floor's scale), computed once."""
        if self._contributor_norms is None:
            matrix, scale = self.contributor_matrix()
            self._contributor_norms = torch.linalg.vector_norm(matrix.double(), dim=1) * scale
        return self._contributor_norms

    def chance_scores(self, queries: torch.Tensor) -> torch.Tensor:
        """The share policy's chance levels of every contributor against each query (:func:`chance_scores`)."""
        return chance_scores(queries, self.contributor_norms())

    def contributor_scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Net cluster-weighted score per contributor ``[Q, n_contributors]`` (order: ``contributors``)."""
        matrix, scale = self.contributor_matrix()
        return scan_scores(matrix, queries * scale)

    def row_score(self, position: int, score: float) -> RowScore:
        return RowScore(self.row_ids[position], self.row_contributor_ids[position], score)

    def verify(self, expected_index_hash: str | None = None) -> VerificationReport:
        """Recompute every file hash and the index hash; report each mismatch."""
        problems = []
        files = [*self.manifest["shards"], self.manifest["contributors_file"]]
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
