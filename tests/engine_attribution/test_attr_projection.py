"""Seeded block projections: dimensions, distributions, determinism."""

import pytest
import torch

from attribution.engine.gradients import GradientBlock
from attribution.engine.projection import BlockProjector, ProjectionSpec, allocate_block_dims

BLOCKS = [GradientBlock("small", 3, 10, True), GradientBlock("large", 40, 20, False)]  # sizes 33, 800


def test_block_dims_split_k_by_size_and_give_every_block_at_least_one():
    assert allocate_block_dims([33, 800], 100) == [5, 95]
    assert sum(allocate_block_dims([1, 1, 10_000], 3)) == 3
    with pytest.raises(ValueError, match="smaller than the number of gradient blocks"):
        allocate_block_dims([5, 5, 5], 2)


@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "orthogonal"])
def test_projection_is_a_function_of_seed_and_block_name_only(kind):
    spec = ProjectionSpec(seed=11, k=64, kind=kind)
    first, second = BlockProjector(BLOCKS, spec), BlockProjector(list(reversed(BLOCKS)), spec)
    for block in BLOCKS:
        k_first = first.block_dims[first.blocks.index(block)]
        k_second = second.block_dims[second.blocks.index(block)]
        assert torch.equal(first.matrix(block, k_first), second.matrix(block, k_second))
    other = BlockProjector(BLOCKS, ProjectionSpec(seed=12, k=64, kind=kind))
    assert not torch.equal(first.matrix(BLOCKS[1], 61), other.matrix(BLOCKS[1], 61))


def test_orthogonal_projection_is_exact_when_a_block_fits_and_unbiased_when_it_does_not():
    projector = BlockProjector(BLOCKS, ProjectionSpec(seed=3, k=64, kind="orthogonal"))
    # k_m ≥ d_m: orthonormal rows, an isometric embedding, so inner products are kept exactly.
    fits = projector.matrix(GradientBlock("fits", 2, 4, False), 20).double()
    assert torch.allclose(fits @ fits.T, torch.eye(8, dtype=torch.float64), atol=1e-6)
    # k_m < d_m: orthonormal columns scaled by √(d/k), so E[P Pᵀ] = I and trace(P Pᵀ) = d exactly.
    compressed = projector.matrix(BLOCKS[1], 100).double()
    assert torch.allclose(compressed.T @ compressed, 8.0 * torch.eye(100, dtype=torch.float64), atol=1e-5)
    assert float(torch.trace(compressed @ compressed.T)) == pytest.approx(800, rel=1e-6)


def test_orthogonal_projection_keeps_inner_products_better_than_gaussian_at_high_k_over_d():
    block = GradientBlock("layer", 30, 20, False)  # d = 600, projected to 480
    vectors = torch.randn(40, 600, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = vectors @ vectors.T

    def mean_error(kind):
        errors = []
        for seed in range(5):
            matrix = BlockProjector([block], ProjectionSpec(seed=seed, k=480, kind=kind)).matrix(block, 480).double()
            projected = vectors @ matrix
            errors.append(float((projected @ projected.T - exact).abs().mean()))
        return sum(errors) / len(errors)

    assert mean_error("orthogonal") < 0.6 * mean_error("gaussian")


def test_unknown_projection_kinds_and_dimensions_are_rejected():
    with pytest.raises(ValueError, match="unknown projection kind"):
        ProjectionSpec(seed=1, kind="sparse")
    with pytest.raises(ValueError, match="k must be in"):
        ProjectionSpec(seed=1, k=8193)
