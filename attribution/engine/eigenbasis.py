"""A data-aware projection: most of each block's dimensions are the leading directions of its
Kronecker-factored (KFAC) eigenbasis; the rest are a seeded random projection of what those leave out.

Why: the per-example gradient of a Linear layer is ``Σ_t δ_t ⊗ a_t`` (output-side gradient times input
activation), and its second moment is close to ``S ⊗ A`` (``S = E[δδᵀ]``, ``A = E[aaᵀ]``; KFAC, Martens &
Grosse 2015). The eigenvectors ``u_i ⊗ v_j`` of that product carry variance ``σ_i α_j``; influence
``qᵀ(F + λI)⁻¹g`` is made mostly of the directions whose variance is above the damping, so keeping the pairs
of largest ``σ_i α_j`` keeps what the scores are made of, while a random ``k_m``-dim subspace of a
``d_m``-dim block keeps each direction's share ``k_m/d_m`` and adds noise of the order of ``1/k_m``. This is
the projection LoGra (Choe et al. 2024) initialises from the same eigenbasis, and the basis EK-FAC (George et
al. 2018) rescales; here only the projection changes, the curvature is still the true Fisher measured in the
projected space.

Why a random remainder (``fraction`` < 1, platform 0.9): the leading directions are what rows of one template
share; what tells two such rows apart ("locked after 3 attempts" against "after 7 attempts") is in the tail.
With the eigenbasis alone (``fraction`` = 1), the whitened-duplicate rule joined 8 honest rows of other
contributors to rows that differ from them in one word, and 108 of 238 training rows fed back ranked
themselves first (170 with the orthogonal projection). A tenth of the dimensions as a seeded random projection
of the residual ``(I - EEᵀ)g`` brings that back (0 rows joined, 153 of 238), and keeps part of the index secret.

Measured (bench/attribution_convex.py, d = 10,250, row LDS against retraining; exact influence 0.941):

    k = 141 (the production k/d)   orthogonal 0.741   eigenbasis 1.0: 0.866   0.9: 0.809   0.75: 0.793
    k = 1,024                      orthogonal 0.911   eigenbasis 1.0: 0.943                0.75: 0.944

Refined (``IndexConfig.eigenbasis_candidates`` > 1; the platform uses 4): the Kronecker product ``S ⊗ A`` only
approximates the gradients' second moment, so its leading pairs are near, not at, the directions the gradients
vary along. The fit keeps ``candidates`` times as many pairs and :func:`refine` takes the fit sample's leading
principal directions inside their span (a ``k_c × k_e`` mix per block; the factors are unchanged, the dense
``d_m × k_m`` principal basis is never formed). Measured on the same harness at k = 141 (damping 0.01): row LDS
0.809 → 0.898 (2× candidates 0.860, 8× 0.916), LOO Spearman 0.439 → 0.559, contributors' net-score LOCO Spearman
0.634 → 0.684; at k = 1,024 LDS unchanged (0.942). On the LoRA harness (bench/attribution_lora.py, full run)
LDS 0.660 → 0.655 at the platform's damping (within the seed noise) and 0.761 → 0.795 at damping 0.1; the causal
tiny Llama 0.418 → 0.437 (quick). Taking the Fisher rows into the principal directions as well was measured and
not kept (k = 141: 0.872; LoRA 0.652).

How: one pass over the first ``rows`` training rows (``IndexConfig.eigenbasis_rows``; the build buffers
them, so the index is still built in one pass over the data) accumulates, per block, ``Σ G Gᵀ`` and
``Σ GᵀG`` of the reshaped per-example gradient ``G = [∇W | ∇b]`` (``out × (in + 1)``: a bias is one more
input column, whose activation is always 1). Eigenvectors are sorted by eigenvalue (ties by position) with
their sign fixed (largest-magnitude entry positive), so a basis is a deterministic function of the
gradients. The kept pairs are the ``round(fraction × k_m)`` largest products ``σ_i α_j`` (stable order). The
basis (and a refined basis's mix) is stored in the index (``projection.safetensors``, hashed like every other
file); the residual projection is regenerated from the index's secret seed, like the random kinds' matrices. A
refined basis needs the fit sample's gradients once more after the Kronecker fit: the build keeps them in memory
up to its buffer and takes the others again (build_pass.py), so the basis never depends on the buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .gradients import GradientBlock

PROJECTION_NAME = "projection.safetensors"


def _as_matrix(block: GradientBlock, grad: torch.Tensor) -> torch.Tensor:
    """``[B, d_m]`` flattened gradients (weight row-major, then bias) → ``[B, out, in']``: a bias is one more input
    column, whose activation is always 1."""
    rows = grad.shape[0]
    weight = grad[:, : block.out_features * block.in_features].reshape(rows, block.out_features, block.in_features)
    if block.has_bias:
        weight = torch.cat([weight, grad[:, block.out_features * block.in_features:].unsqueeze(2)], dim=2)
    return weight


@dataclass(frozen=True)
class BlockBasis:
    """One block's kept eigen-directions: ``out_vectors`` ``[out, a]``, ``in_vectors`` ``[in', b]``
    (``in' = in + 1`` with a bias), ``selected`` ``[k_e]`` flat positions in the ``[a, b]`` grid (row-major).
    ``residual`` ``[d_m, k_r]`` (set by :meth:`with_residual`): a seeded random projection of what the kept
    directions leave out; ``pad`` zero dimensions when the budget exceeds the block's size. ``mix`` ``[k_c, k_e]``
    (a refined basis, :meth:`BasisFit.refine`): the kept directions are the leading principal directions of the
    fit sample's gradients inside the ``k_c`` selected Kronecker pairs, ``E·mix`` instead of ``E``."""

    out_vectors: torch.Tensor
    in_vectors: torch.Tensor
    selected: torch.Tensor
    residual: torch.Tensor | None = None
    pad: int = 0
    mix: torch.Tensor | None = None

    @property
    def kept(self) -> int:
        return int(self.selected.shape[0] if self.mix is None else self.mix.shape[1])

    def dense(self, block: GradientBlock) -> torch.Tensor:
        """The kept directions as columns ``[d_m, k_e]`` in the block's flat layout (weight row-major, bias)."""
        width = self.in_vectors.shape[1]
        rows, cols = self.selected // width, self.selected % width
        grid = torch.einsum("oa,ia->oia", self.out_vectors.double()[:, rows], self.in_vectors.double()[:, cols])
        weight = grid[:, : block.in_features, :].reshape(block.out_features * block.in_features, -1)
        dense = torch.cat([weight, grid[:, block.in_features, :]]) if block.has_bias else weight
        return dense if self.mix is None else dense @ self.mix.double()

    def with_residual(self, block: GradientBlock, k_block: int, seed: int) -> BlockBasis:
        """This basis completed to ``k_block`` dimensions: a seeded random orthogonal projection of the
        gradient's component outside the kept directions (``(I - EEᵀ) R``, ``R`` as the ``orthogonal`` kind draws
        it), so rows that agree on the leading directions can still be told apart; zeros past the block's size."""
        from .canonical import derived_seed
        from .projection import _orthogonalised

        kept = self.kept
        free = min(k_block, block.size) - kept
        pad = k_block - kept - max(free, 0)
        residual = None
        if free > 0:
            generator = torch.Generator(device="cpu").manual_seed(derived_seed(seed, f"{block.name}/residual"))
            draws = _orthogonalised(torch.randn(block.size, free, generator=generator, dtype=torch.float32)).double()
            directions = self.dense(block)
            residual = (draws - directions @ (directions.T @ draws)).float().contiguous()
        return BlockBasis(self.out_vectors, self.in_vectors, self.selected, residual, pad, self.mix)

    def pairs(self, block: GradientBlock, grad: torch.Tensor) -> torch.Tensor:
        """``[B, d_m]`` flattened gradients → their coordinates ``[B, k_c]`` on the selected Kronecker pairs."""
        rows = grad.shape[0]
        weight = _as_matrix(block, grad)
        out_vectors = self.out_vectors.to(device=grad.device, dtype=grad.dtype)
        in_vectors = self.in_vectors.to(device=grad.device, dtype=grad.dtype)
        rotated = torch.matmul(out_vectors.T, torch.matmul(weight, in_vectors)).reshape(rows, -1)
        return rotated[:, self.selected.to(grad.device)]

    def project(self, block: GradientBlock, grad: torch.Tensor) -> torch.Tensor:
        """``[B, d_m]`` flattened gradients (weight row-major, then bias) → ``[B, k_m]``."""
        rows = grad.shape[0]
        coordinates = self.pairs(block, grad)
        if self.mix is not None:
            coordinates = coordinates @ self.mix.to(device=grad.device, dtype=grad.dtype)
        parts = [coordinates]
        if self.residual is not None:
            parts.append(grad @ self.residual.to(device=grad.device, dtype=grad.dtype))
        if self.pad:
            parts.append(grad.new_zeros(rows, self.pad))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class BasisFit:
    """Accumulates each block's two second moments over per-example gradients ``{name: [B, d_m]}``."""

    def __init__(self, blocks: Sequence[GradientBlock]):
        self.blocks = list(blocks)
        self.rows = 0
        self._out: dict[str, torch.Tensor] = {}
        self._in: dict[str, torch.Tensor] = {}

    def add(self, gradients: Mapping[str, torch.Tensor]) -> None:
        for block in self.blocks:
            weight = _as_matrix(block, gradients[block.name].detach().double().cpu())
            out_moment = torch.einsum("boi,bpi->op", weight, weight)
            in_moment = torch.einsum("boi,boj->ij", weight, weight)
            if block.name in self._out:
                self._out[block.name] += out_moment
                self._in[block.name] += in_moment
            else:
                self._out[block.name], self._in[block.name] = out_moment, in_moment
        self.rows += next(iter(gradients.values())).shape[0] if gradients else 0

    def bases(self, block_dims: Sequence[int], fraction: float = 1.0, candidates: float = 1.0) -> dict[str, BlockBasis]:
        """Per block, the ``round(fraction × k_m)`` (at least 1) eigen-pairs of largest ``σ_i α_j``; the rest of
        the budget is the residual projection (:meth:`BlockBasis.with_residual`, added by the projector).
        ``candidates`` > 1 keeps that many times more pairs, for :meth:`refine` to choose directions among."""
        if self.rows == 0:
            raise ValueError("an eigenbasis projection needs at least one training row to fit")
        out: dict[str, BlockBasis] = {}
        for block, k_block in zip(self.blocks, block_dims):
            out_values, out_vectors = _sorted_eigen(self._out[block.name])
            in_values, in_vectors = _sorted_eigen(self._in[block.name])
            products = (out_values.view(-1, 1) * in_values.view(1, -1)).reshape(-1)
            keep = min(max(1, round(candidates * max(1, round(fraction * k_block)))), products.shape[0])
            order = torch.argsort(-products, stable=True)[:keep]
            width = in_values.shape[0]
            rows_kept, cols_kept = order // width, order % width
            a, b = int(rows_kept.max()) + 1, int(cols_kept.max()) + 1
            out[block.name] = BlockBasis(out_vectors[:, :a].float().contiguous(),
                                         in_vectors[:, :b].float().contiguous(), (rows_kept * b + cols_kept).long())
        return out


def refine(bases: Mapping[str, BlockBasis], blocks: Sequence[GradientBlock], block_dims: Sequence[int],
           fraction: float, gradient_batches: Iterable[Mapping[str, torch.Tensor]],
           row_weights: Iterable[torch.Tensor | None] | None = None) -> dict[str, BlockBasis]:
    """Per block, the leading ``round(fraction × k_m)`` principal directions of the gradients in
    ``gradient_batches`` (the fit sample's; the uncentred second moment of each row's block gradient scaled to unit
    length, so every row has one vote) inside the span of the selected Kronecker pairs (``bases`` fitted with
    ``candidates`` > 1): ``mix`` holds them as combinations of the pairs.

    ``row_weights`` (one ``[B]`` tensor or ``None`` per batch, in step with ``gradient_batches``) scales each
    row's vote: the build passes ``1/|duplicate cluster|`` (the cluster's rows counted in the fit sample), so a
    row and its near-copies have one vote between them, as they count once in the curvature. Otherwise
    uploading many copies of one row would steer which directions the index keeps.

    Why: the Kronecker product ``S ⊗ A`` only approximates the gradients' second moment, so its leading pairs
    are not quite the directions the gradients vary along; the principal directions of the gradients themselves
    are what a k-dim projection should keep (on bench/attribution_convex.py at k = 141: the top principal
    directions scored LDS 0.933 against 0.853 for the Kronecker pairs). A dense principal basis of a block is a
    ``d_m × k_m`` matrix; inside a few times ``k_m`` Kronecker pairs it is a small ``k_c × k_m`` one, and the
    factors stay as they are."""
    moments: dict[str, torch.Tensor] = {}
    weights_of = iter(row_weights) if row_weights is not None else None
    for gradients in gradient_batches:
        weights = next(weights_of) if weights_of is not None else None
        for block in blocks:
            grad = gradients[block.name].detach().double().cpu()
            # Every row one vote: unit rows, so rows the model never fitted (random text, huge gradients) cannot
            # pull the directions their way.
            grad = grad / torch.linalg.vector_norm(grad, dim=1, keepdim=True).clamp_min(1e-300)
            if weights is not None:
                grad = grad * weights.to(grad).sqrt().view(-1, 1)
            coordinates = bases[block.name].pairs(block, grad)
            moment = coordinates.T @ coordinates
            moments[block.name] = moments[block.name] + moment if block.name in moments else moment
    if not moments:
        raise ValueError("refining an eigenbasis needs at least one training row")
    out: dict[str, BlockBasis] = {}
    for block, k_block in zip(blocks, block_dims):
        basis = bases[block.name]
        keep = min(max(1, round(fraction * k_block)), int(basis.selected.shape[0]))
        _, vectors = _sorted_eigen(moments[block.name])
        out[block.name] = BlockBasis(basis.out_vectors, basis.in_vectors, basis.selected,
                                     mix=vectors[:, :keep].float().contiguous())
    return out


def _sorted_eigen(moment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending, ≥ 0) and eigenvectors with a fixed sign: the largest-magnitude entry of each
    vector is positive (first such entry on ties), so a basis does not depend on LAPACK's sign choices."""
    values, vectors = torch.linalg.eigh((moment + moment.T) / 2)
    order = torch.argsort(-values, stable=True)
    values, vectors = values[order].clamp_min(0.0), vectors[:, order]
    pivot = torch.argmax(vectors.abs(), dim=0)
    signs = torch.sign(vectors[pivot, torch.arange(vectors.shape[1])])
    return values, vectors * torch.where(signs == 0, torch.ones_like(signs), signs)


def fit_bases(blocks: Sequence[GradientBlock], block_dims: Sequence[int],
              gradient_batches: Iterable[Mapping[str, torch.Tensor]], fraction: float = 1.0) -> dict[str, BlockBasis]:
    fit = BasisFit(blocks)
    for gradients in gradient_batches:
        fit.add(gradients)
    return fit.bases(block_dims, fraction)


def save_bases(bases: Mapping[str, BlockBasis], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for name, basis in bases.items():
        tensors[f"{name}/out"] = basis.out_vectors.contiguous()
        tensors[f"{name}/in"] = basis.in_vectors.contiguous()
        tensors[f"{name}/selected"] = basis.selected.contiguous()
        if basis.mix is not None:
            tensors[f"{name}/mix"] = basis.mix.contiguous()
    save_file(tensors, str(path))


def load_bases(path: Path, blocks: Sequence[GradientBlock]) -> dict[str, BlockBasis]:
    from safetensors.torch import load_file

    # Copies, not views of the file: safetensors may map the file, and a basis must not change under a
    # loaded index if the file is rewritten (verification catches a changed file; memory must not follow it).
    tensors = {name: tensor.clone() for name, tensor in load_file(str(path)).items()}
    try:
        return {block.name: BlockBasis(tensors[f"{block.name}/out"], tensors[f"{block.name}/in"],
                                       tensors[f"{block.name}/selected"], mix=tensors.get(f"{block.name}/mix"))
                for block in blocks}
    except KeyError as exc:
        raise ValueError(f"{path.name} has no projection basis for block {exc}") from exc
