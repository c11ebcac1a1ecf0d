"""Building an attribution index: preconditioned projected training gradients, sharded on disk (``index.py`` reads it).

Build (``IndexBuilder`` here; ``build_pass.build_index`` drives it over the training data)
    1. Each training row ``i`` gets a projected gradient ``φ_i`` (``k`` dims) of its training loss.
    2. Curvature in projected space: ``F = Σ w_i C_i / Σ w_i + λI``, where ``C_i`` is ``φ_i φ_iᵀ``
       (``curvature="empirical_fisher"``, free) or the row's true-Fisher / Gauss-Newton term
       (``curvature="fisher"``, expectation over the model's own predictions, and measurably better rankings
       on the ground-truth harness). Its cost: for a classifier, one backward per drawn class, or ``C - 1``
       backward passes along a basis of the logits that give the labelled gradient and the exact Fisher at once
       (``gradients.centred_logit_basis``), whichever is fewer; for a causal LM one backward per sample. With the
       eigenbasis projection the gradients are taken once, in the pass that fits the basis, and kept
       (``build_pass._fit_eigenbasis``, up to ``gradient_buffer_bytes``).
       ``w_i = 1 / |duplicate cluster of i|`` so planting copies does not distort the curvature.
    3. Damping rule (``damping_rule``): ``"weighted_mean_eigenvalue"`` (the platform's) sets
       ``λ = damping_ratio × tr(F₀²) / tr(F₀)``, the curvature-weighted mean eigenvalue; the older
       ``"mean_eigenvalue"`` sets ``λ = damping_ratio × tr(F₀) / k``. The projection keeps tr(F₀)
       about constant as k grows, so the old rule's λ shrank with k and the best ratio moved with it
       (0.1 at k=64 to 1 at k=1,024 on bench/attribution_convex.py); under the weighted rule exact
       influence's own damping is the same ratio (0.0024-0.0028) at every k and the best ratio was 0.01
       from k=141 to k=1,024. Damping keeps ``F`` invertible when ``n < k`` and stops tiny-eigenvalue
       directions (noise) from dominating scores. With fewer curvature rows ``R`` than ``k`` the inverse
       goes through the ``R × R`` Gram matrix (Woodbury) instead of a ``k × k`` factorisation; both
       paths are tested against a dense solve.
    4. ``Ψ = Φ F⁻¹`` is stored in fp16 (per-shard power-of-two scale so values sit near 1, away
       from fp16 underflow); a query's score for row ``i`` is then one dot product ``Ψ_i · q``. One
       damping serves the rows a receipt lists and the shares it pays.
    5. Credit structure (``credit.py``): credit groups, duplicate clusters (ingestion's and near-identical
       whitened gradients; if the latter join rows, steps 2-4 run again with each cluster counted once),
       each row's self-influence and novelty, its value on ``eval_queries`` (and harm flags), the credit
       weight each row earns with, the groups' noise scales measured on held-out queries, and the
       fallback weights. Stored in ``credit.safetensors``.
    6. Contributor matrix: row ``c`` = ``Σ_{i of c} w_i Ψ_i`` with the credit weights, fp16 like Ψ: each
       contributor's net score (and negative influence) for a query is one small matrix-vector product.

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

import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import credit
from .canonical import canonical_json, file_sha256
from .eigenbasis import PROJECTION_NAME, save_bases
from .gradients import GradientBlock, TokenReduction
from .index import AttributionIndex, memory_mapped_tensor
from .layout import CONTRIBUTORS_NAME, CREDIT_NAME, FORMAT_VERSION, MANIFEST_NAME
from .projection import ProjectionSpec

_SPILL_DIR = ".build"

CurvatureKind = Literal["empirical_fisher", "fisher"]
DampingRule = Literal["mean_eigenvalue", "weighted_mean_eigenvalue"]
_SPILL_DIR = ".build"


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index. Everything here is recorded in the manifest."""

    projection: ProjectionSpec
    curvature: CurvatureKind = "empirical_fisher"
    damping_ratio: float = 0.1
    damping_rule: DampingRule = "mean_eigenvalue"
    token_reduction: TokenReduction = "sum"
    fisher_samples: int = 1
    shard_rows: int = 65536
    # Credit structure (credit.py): rows per credit group, and the gradient cosine from which two rows
    # are one duplicate cluster (first come keeps the credit).
    group_size: int = 16
    min_groups: int = 8
    duplicate_cosine: float | None = 0.99  # whitened cosine; None: only the ingestion (MinHash) clusters
    harm_outlier_z: float = 3.0
    # Credit groups whose rows together are worth significantly less than this fraction of as many typical rows
    # on the evaluation split earn nothing (credit.low_value_sets; None: off). Needs evaluation queries.
    low_value_ratio: float | None = 0.5
    low_value_fdr: float = 0.05
    # projection.kind == "eigenbasis": the first this many training rows fit each block's basis, which takes this
    # fraction of each block's dimensions; a seeded random projection of the rest takes the others (eigenbasis.py).
    eigenbasis_rows: int = 4096
    eigenbasis_fraction: float = 0.9
    # > 1: keep this many times more Kronecker pairs and take the fit sample's leading principal directions among
    # them (eigenbasis.refine); 1: the Kronecker pairs themselves.
    eigenbasis_candidates: float = 1.0

    def __post_init__(self):
        value = self.damping_ratio
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"damping_ratio must be a positive number, got {value!r}")
        if self.damping_rule not in ("mean_eigenvalue", "weighted_mean_eigenvalue"):
            raise ValueError(f"unknown damping_rule {self.damping_rule!r}")
        if not (isinstance(self.group_size, int) and self.group_size >= 1):
            raise ValueError("group_size must be a positive int")
        if not (isinstance(self.min_groups, int) and self.min_groups >= 1):
            raise ValueError("min_groups must be a positive int")
        if self.low_value_ratio is not None and not 0 < self.low_value_ratio <= 1:
            raise ValueError("low_value_ratio must be in (0, 1] or None")
        if not 0 < self.low_value_fdr < 1:
            raise ValueError("low_value_fdr must be in (0, 1)")
        if self.duplicate_cosine is not None and not 0 < self.duplicate_cosine <= 1:
            raise ValueError("duplicate_cosine must be in (0, 1] or None")
        if not (isinstance(self.eigenbasis_rows, int) and self.eigenbasis_rows >= 1):
            raise ValueError("eigenbasis_rows must be a positive int")
        if not 0 < self.eigenbasis_fraction <= 1:
            raise ValueError("eigenbasis_fraction must be in (0, 1]")
        if not (isinstance(self.eigenbasis_candidates, int | float) and math.isfinite(self.eigenbasis_candidates)
                and self.eigenbasis_candidates >= 1):
            raise ValueError("eigenbasis_candidates must be a number >= 1")


@dataclass
class TrainingBatch:
    """A batch of tokenised training rows and who owns them.

    ``cluster_ids[i]`` names row ``i``'s near-duplicate cluster from ingestion (``None`` = unique).
    ``accepted_order[i]`` orders rows by when they were accepted (smaller = earlier; default: the order
    rows are added): inside a duplicate cluster only the earliest accepted row earns credit.
    """

    inputs: Mapping[str, torch.Tensor]
    row_ids: Sequence[str]
    contributor_ids: Sequence[str]
    cluster_ids: Sequence[str | None] | None = None
    accepted_order: Sequence[int] | None = None


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
        self.projection_bases: dict | None = None  # fitted eigenbasis (build_index), stored with the index
        self._spill = self.directory / _SPILL_DIR
        self._spill.mkdir(parents=True, exist_ok=True)
        self._pending_features: list[torch.Tensor] = []
        self._pending_curvature: list[torch.Tensor] = []
        self._pending_rows = 0
        self._spill_files: list[Path] = []
        self.row_ids: list[str] = []
        self.contributor_ids: list[str] = []
        self.cluster_ids: list[str | None] = []
        self.accepted_order: list[int] = []

    def add(
        self,
        features: torch.Tensor,
        row_ids: Sequence[str],
        contributor_ids: Sequence[str],
        cluster_ids: Sequence[str | None] | None = None,
        curvature_rows: torch.Tensor | None = None,
        accepted_order: Sequence[int] | None = None,
    ) -> None:
        """Add ``[B, k]`` projected gradients; ``curvature_rows`` ``[B, R, k]`` if not the features."""
        batch = features.shape[0]
        if not (len(row_ids) == len(contributor_ids) == batch):
            raise ValueError("row_ids, contributor_ids and features must have the same length")
        if cluster_ids is not None and len(cluster_ids) != batch:
            raise ValueError("cluster_ids must have one entry per row")
        if accepted_order is not None and len(accepted_order) != batch:
            raise ValueError("accepted_order must have one entry per row")
        if features.shape[1] != self.config.projection.k:
            raise ValueError(f"features have {features.shape[1]} dims, index k={self.config.projection.k}")
        self.row_ids.extend(map(str, row_ids))
        self.contributor_ids.extend(map(str, contributor_ids))
        self.cluster_ids.extend([None if c is None else str(c) for c in cluster_ids] if cluster_ids else [None] * batch)
        first = len(self.accepted_order)
        self.accepted_order.extend(range(first, first + batch) if accepted_order is None else map(int, accepted_order))
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

    def _damping(self, curvature: torch.Tensor) -> float:
        """λ by ``damping_rule`` (module docstring, step 3)."""
        trace = float(torch.trace(curvature))
        if trace <= 0:
            raise ValueError("curvature is zero: the model's gradients vanish on every training row")
        if self.config.damping_rule == "weighted_mean_eigenvalue":
            return self.config.damping_ratio * float((curvature * curvature).sum()) / trace
        return self.config.damping_ratio * trace / self.config.projection.k

    def _unit_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-normalised projected gradients of every row ``[n, k]`` (fp16: grouping and duplicate
        detection need directions, not precision; 2 bytes × k per row) and their norms ``[n]``."""
        units, norms = [], []
        for _, chunk in self._spilled_chunks():
            features = chunk["features"].float()
            units.append(credit.unit_rows(features).half())
            norms.append(torch.linalg.vector_norm(features, dim=1))
        return torch.cat(units), torch.cat(norms)

    def _null_queries(self, eval_queries: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The queries whose group scores measure the noise null (module docstring of credit.py), and for
        each the training row it was taken from (-1 for held-out queries): a training row used as a query
        is no null for its own group, so that score is left out of its group's null."""
        have = 0 if eval_queries is None else eval_queries.shape[0]
        held_out = torch.full((have,), -1, dtype=torch.int64)
        if have >= credit.MIN_NULL_QUERIES:
            return eval_queries.float(), held_out, "eval"
        wanted = min(len(self.row_ids), credit.MIN_NULL_QUERIES * 2 - have)
        picks = torch.linspace(0, len(self.row_ids) - 1, wanted).round().long().unique()
        rows = []
        for start, chunk in self._spilled_chunks():
            local = picks[(picks >= start) & (picks < start + chunk["features"].shape[0])] - start
            rows.append(chunk["features"][local].float())
        sampled = torch.cat(rows)
        if not have:
            return sampled, picks, "train"
        return torch.cat([eval_queries.float(), sampled]), torch.cat([held_out, picks]), "eval+train"

    def _write_psi(self, weights: torch.Tensor) -> tuple[float, list[dict]]:
        """Damped curvature with per-row ``weights``, then Ψ = Φ F⁻¹ written as fp16 shards."""
        k = self.config.projection.k
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
        damping = self._damping(curvature)
        c = torch.cat(kept_rows) if sum(r.shape[0] for r in kept_rows) < k else None
        del kept_rows
        precondition = _preconditioner(curvature, c, damping)
        shards = []
        for start, chunk in self._spilled_chunks():
            psi = precondition(chunk["features"].double())
            for offset in range(0, psi.shape[0], self.config.shard_rows):
                block = psi[offset : offset + self.config.shard_rows]
                scale = _power_of_two_scale(block)
                stored = (block / scale).to(torch.float16)
                name = f"shard_{len(shards):05d}.safetensors"
                save_file({"psi": stored, "scale": torch.tensor([scale], dtype=torch.float32)},
                          str(self.directory / name))
                shards.append({"file": name, "start": start + offset, "rows": block.shape[0],
                               "sha256": file_sha256(self.directory / name)})
        return damping, shards

    def finalize(self, eval_queries: torch.Tensor | None = None) -> AttributionIndex:
        """Compute the credit structure and damped curvature, write Ψ shards, the credit file, the
        contributor matrix and the manifest.

        ``eval_queries`` ``[m, k]``: projected loss gradients of held-out rows (their true labels). They
        value every row (and flag harmful ones) and measure the noise null; without them the null is
        measured on a sample of training rows and rows are not valued."""
        self._flush()
        if not self.row_ids:
            raise ValueError("cannot build an empty index")
        if len(set(self.row_ids)) != len(self.row_ids):
            raise ValueError("row ids must be unique")
        k = self.config.projection.k
        n = len(self.row_ids)
        seed = self.config.projection.seed

        # Credit structure first: groups and duplicate clusters decide the curvature weights too.
        unit, norms = self._unit_features()
        groups = credit.credit_groups(unit, self.config.group_size, seed, self.config.min_groups)
        ingested = credit.ingestion_roots(self.cluster_ids)
        weights = credit.curvature_weights(ingested)
        null_queries, null_rows, null_source = self._null_queries(eval_queries)

        damping, shards = self._write_psi(weights)
        # Whitened duplicates need F⁻¹, so they are found on this first Ψ. If they join rows, the
        # curvature is recomputed with each cluster counted once and Ψ written again.
        starts = np.array([shard["start"] for shard in shards])

        def psi_of(positions: np.ndarray) -> torch.Tensor:
            shard_of = np.searchsorted(starts, positions, side="right") - 1
            out = torch.empty(len(positions), k, dtype=torch.float64)
            for number in np.unique(shard_of).tolist():
                mask = shard_of == number
                path = self.directory / shards[number]["file"]
                psi = memory_mapped_tensor(path, "psi")
                scale = float(memory_mapped_tensor(path, "scale")[0])
                out[torch.from_numpy(mask)] = psi[torch.from_numpy(positions[mask] - starts[number])].double() * scale
            return out

        def features_of(positions: np.ndarray) -> torch.Tensor:
            index = torch.from_numpy(positions)
            return unit[index].double() * norms[index].double().view(-1, 1)

        roots, self_influence, novelty, gradient_pairs = credit.whitened_duplicates(
            ingested, groups, self.accepted_order, features_of, psi_of, self.config.duplicate_cosine)
        if gradient_pairs:
            damping, shards = self._write_psi(credit.curvature_weights(roots))
            _, self_influence, novelty, _ = credit.whitened_duplicates(roots, groups, self.accepted_order,
                                                                       features_of, psi_of, None)
        shutil.rmtree(self._spill)
        first_come = credit.first_come_weights(roots, self.accepted_order)

        # Scores against what is stored (fp16 rows × scale), so group and contributor scores are exact
        # sums of the row scores a query sees.
        def stored_rows():
            for shard in shards:
                with safe_open(str(self.directory / shard["file"]), framework="pt") as handle:
                    yield shard["start"], handle.get_tensor("psi").double() * float(handle.get_tensor("scale")[0])

        values = None
        flagged = np.zeros(0, dtype=np.int64)
        harm_threshold = None
        row_credit = first_come * novelty
        n_groups = int(groups.max()) + 1
        if eval_queries is not None and eval_queries.shape[0]:
            values, group_errors = credit.values_and_set_errors(stored_rows(), eval_queries, groups, n_groups)
            flagged, harm_threshold = credit.harmful_rows(values, self.config.harm_outlier_z)
            row_credit = row_credit * credit.value_weights(values)
        row_credit[flagged] = 0.0
        low_value_groups = np.zeros(0, dtype=np.int64)
        if values is not None and self.config.low_value_ratio is not None and eval_queries.shape[0] > 1:
            low_value_groups, _ = credit.low_value_sets(values, groups.numpy(), n_groups, self.config.low_value_ratio,
                                                        group_errors, self.config.low_value_fdr, eval_queries.shape[0])
        in_low_value_group = np.isin(groups.numpy(), low_value_groups)
        row_credit[in_low_value_group] = 0.0
        fallback = first_come * novelty * np.maximum(values, 0.0) if values is not None else row_credit.copy()
        fallback[flagged] = 0.0
        fallback[in_low_value_group] = 0.0
        fallback_basis = "valuation" if values is not None and fallback.sum() > 0 else "rows"
        if fallback_basis == "rows":
            fallback = row_credit.copy()

        contributors = sorted(set(self.contributor_ids))
        contributor_position = {c: i for i, c in enumerate(contributors)}
        row_contributor = torch.tensor([contributor_position[c] for c in self.contributor_ids])
        credit_t = torch.from_numpy(row_credit)
        group_matrix = torch.zeros(n_groups, k, dtype=torch.float64)
        contributor_matrix = torch.zeros(len(contributors), k, dtype=torch.float64)
        for first, rows in stored_rows():
            own = slice(first, first + rows.shape[0])
            weighted = rows * credit_t[own].view(-1, 1)
            group_matrix.index_add_(0, groups[own], weighted)
            # Contributor scores are plain sums of row scores: the linear estimate of what removing all of
            # a contributor's rows does to the answer's loss (bench/attribution_convex.py: Spearman with
            # retrained leave-one-contributor-out 0.670 as plain sums, 0.587 credit-weighted, at k=1,024).
            # Credit weights decide payouts (groups, rows); they would only blur this estimate.
            contributor_matrix.index_add_(0, row_contributor[own], rows)
        # Each contributor's net value (the sum of their rows' values) is the mean over the evaluation queries of
        # their contributor-matrix score; its standard error over those queries tells noise from a shortfall
        # (credit.low_value_contributors).
        contributor_value_se = None
        if values is not None and eval_queries.shape[0] > 1:
            per_query = eval_queries.double() @ contributor_matrix.T  # [m, C]
            contributor_value_se = per_query.std(0) / math.sqrt(per_query.shape[0])
        group_credit = np.bincount(groups.numpy(), weights=row_credit, minlength=n_groups)
        null_scores = null_queries.double() @ group_matrix.T
        own_group = torch.where(null_rows >= 0, groups[null_rows.clamp_min(0)], torch.full_like(null_rows, -1))
        group_scale = credit.group_noise_scale(null_scores, torch.linalg.vector_norm(null_queries.double(), dim=1),
                                               group_credit, own_group.numpy())

        # fp16 like Ψ: per-query group and contributor scoring are memory-bound scans of these matrices.
        group_scale_fp16 = _power_of_two_scale(group_matrix)
        save_file({
            "group_matrix": (group_matrix / group_scale_fp16).to(torch.float16),
            "group_matrix_scale": torch.tensor([group_scale_fp16], dtype=torch.float32),
            "group_noise": torch.from_numpy(group_scale),
            "row_group": groups.to(torch.int64),
            "row_credit": credit_t.to(torch.float64),
            "row_fallback": torch.from_numpy(np.asarray(fallback, dtype=np.float64)),
            "row_values": torch.from_numpy(np.zeros(n) if values is None else values.astype(np.float64)),
            "row_self_influence": torch.from_numpy(self_influence),
            **({"contributor_value_se": contributor_value_se.double()} if contributor_value_se is not None else {}),
        }, str(self.directory / CREDIT_NAME))
        matrix_scale = _power_of_two_scale(contributor_matrix)
        save_file({"matrix": (contributor_matrix / matrix_scale).to(torch.float16),
                   "scale": torch.tensor([matrix_scale], dtype=torch.float32)},
                  str(self.directory / CONTRIBUTORS_NAME))

        manifest = {
            "format_version": FORMAT_VERSION,
            "model_hash": self.model_hash,
            "projection": {"k": k, "seed": seed, "kind": self.config.projection.kind,
                           **({"fit_rows": self.config.eigenbasis_rows,
                               "eigen_fraction": self.config.eigenbasis_fraction,
                               **({"eigen_candidates": self.config.eigenbasis_candidates}
                                  if self.config.eigenbasis_candidates > 1 else {})}
                              if self.config.projection.kind == "eigenbasis" else {})},
            "method": {
                "curvature": self.config.curvature,
                "damping_rule": self.config.damping_rule,
                "damping_ratio": self.config.damping_ratio,
                "damping": damping,
                "token_reduction": self.config.token_reduction,
                "fisher_samples": self.config.fisher_samples if self.config.curvature == "fisher" else None,
                "storage": "psi_fp16",
            },
            "credit": {
                "groups": n_groups,
                "group_size": self.config.group_size,
                "duplicate_cosine": self.config.duplicate_cosine,
                "gradient_duplicate_pairs": gradient_pairs,
                "duplicate_rows_uncredited": int((first_come == 0).sum()),
                "null_queries": int(null_queries.shape[0]),
                "null_source": null_source,
                "valued": values is not None,
                "value_queries": 0 if values is None else int(eval_queries.shape[0]),
                "harm_outlier_z": self.config.harm_outlier_z,
                "harm_threshold": harm_threshold,
                "harmful_rows": [self.row_ids[p] for p in flagged.tolist()],
                "low_value_ratio": self.config.low_value_ratio,
                "low_value_fdr": self.config.low_value_fdr,
                "low_value_groups": int(low_value_groups.size),
                "low_value_group_rows": int(in_low_value_group.sum()),
                "rows_earning_fully": int((row_credit >= 1.0 - 1e-9).sum()),
                "rows_earning_nothing": int((row_credit <= 0).sum()),
                "mean_credit_weight": float(row_credit.mean()),
                "fallback_basis": fallback_basis,
            },
            "blocks": [block.to_json() for block in self.blocks],
            "row_ids": self.row_ids,
            "row_contributor_ids": self.contributor_ids,
            "row_cluster_ids": [self.row_ids[r] for r in roots.tolist()],
            "contributors": contributors,
            "shards": shards,
            "credit_file": {"file": CREDIT_NAME, "sha256": file_sha256(self.directory / CREDIT_NAME)},
            "contributors_file": {"file": CONTRIBUTORS_NAME,
                                  "sha256": file_sha256(self.directory / CONTRIBUTORS_NAME)},
        }
        if self.config.projection.kind == "eigenbasis":
            if not self.projection_bases:
                raise ValueError("an eigenbasis index needs its fitted projection bases (build_index fits them)")
            save_bases(self.projection_bases, self.directory / PROJECTION_NAME)
            manifest["projection_file"] = {"file": PROJECTION_NAME,
                                           "sha256": file_sha256(self.directory / PROJECTION_NAME)}
        (self.directory / MANIFEST_NAME).write_bytes(canonical_json(manifest))
        return AttributionIndex(self.directory)


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


def _power_of_two_scale(values: torch.Tensor) -> float:
    """Scale that brings ``values`` to max-abs ≤ 1 for fp16 storage. A power of two is exact in
    floating point, so a row's stored value does not depend on which other rows share its shard
    (adding a duplicate elsewhere cannot re-round existing rows)."""
    return 2.0 ** math.ceil(math.log2(float(values.abs().max()) or 1.0))
