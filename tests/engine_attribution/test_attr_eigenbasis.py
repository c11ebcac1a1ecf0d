"""The eigenbasis projection: each block's gradient on its leading KFAC eigen-directions (eigenbasis.py)."""

import json

import numpy as np
import pytest
import torch
from attr_tiny_models import (
    random_classification_inputs,
    tiny_classifier,
    topical_classification_inputs,
    train,
)
from attr_tiny_models import training_batches as tiny_batches

from attribution.engine.build import IndexConfig
from attribution.engine.build_pass import build_index
from attribution.engine.eigenbasis import BasisFit, fit_bases
from attribution.engine.gradients import GradientBlock
from attribution.engine.projection import BlockProjector, ProjectionSpec
from attribution.engine.query import Attributor

BLOCK = GradientBlock(name="layer", out_features=3, in_features=5, has_bias=True)  # 18 gradient dims


def kronecker_gradients(rows: int, seed: int) -> torch.Tensor:
    """Per-example gradients δ ⊗ [a; 1] with anisotropic δ and a (what a Linear layer's gradient looks like)."""
    generator = torch.Generator().manual_seed(seed)
    delta = torch.randn(rows, 3, generator=generator, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.2])
    activation = torch.randn(rows, 5, generator=generator, dtype=torch.float64) * torch.tensor([4.0, 2.0, 1.0, .5, .1])
    weight = delta.unsqueeze(2) * activation.unsqueeze(1)
    return torch.cat([weight.reshape(rows, -1), delta], dim=1)


def test_a_block_kept_whole_is_a_rotation_so_every_inner_product_is_exact():
    grads = kronecker_gradients(40, seed=1)
    bases = fit_bases([BLOCK], [18], [{"layer": grads}])
    projected = BlockProjector([BLOCK], ProjectionSpec(seed=0, k=18, kind="eigenbasis"), dtype=torch.float64,
                               bases=bases).project({"layer": grads})
    assert projected.shape == (40, 18)
    assert torch.allclose(projected @ projected.T, grads @ grads.T, rtol=1e-5, atol=1e-6)
    # A budget above the block's size pads with zero dimensions instead of failing.
    padded = BlockProjector([BLOCK], ProjectionSpec(seed=0, k=20, kind="eigenbasis"), dtype=torch.float64,
                            bases=fit_bases([BLOCK], [20], [{"layer": grads}])).project({"layer": grads})
    assert padded.shape == (40, 20) and torch.all(padded[:, 18:] == 0)


def test_the_kept_directions_are_the_largest_eigenvalue_products_and_keep_more_than_a_random_subspace():
    grads = kronecker_gradients(400, seed=2)
    rows = grads.shape[0]
    matrix = torch.cat([grads[:, :15].reshape(rows, 3, 5), grads[:, 15:].unsqueeze(2)], dim=2)
    out_values = np.linalg.eigvalsh(torch.einsum("boi,bpi->op", matrix, matrix).numpy())[::-1]
    in_values = np.linalg.eigvalsh(torch.einsum("boi,boj->ij", matrix, matrix).numpy())[::-1]
    products = np.sort(np.outer(out_values, in_values).ravel())[::-1]
    k = 6
    basis = fit_bases([BLOCK], [k], [{"layer": grads}])["layer"]
    selected = basis.selected.numpy()
    width = basis.in_vectors.shape[1]
    kept = sorted((out_values[s // width] * in_values[s % width] for s in selected), reverse=True)
    assert np.allclose(kept, products[:k], rtol=1e-6)
    eigen = BlockProjector([BLOCK], ProjectionSpec(seed=0, k=k, kind="eigenbasis"), dtype=torch.float64,
                           bases={"layer": basis}).project({"layer": grads})
    kept_energy = float((eigen ** 2).sum() / (grads ** 2).sum())
    random_energy = []
    for seed in range(5):
        q, _ = torch.linalg.qr(torch.randn(18, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
        random_energy.append(float(((grads @ q) ** 2).sum() / (grads ** 2).sum()))
    assert kept_energy > 0.95 and kept_energy > max(random_energy) + 0.2


def test_the_basis_is_a_deterministic_function_of_the_gradients():
    grads = kronecker_gradients(64, seed=3)
    first = fit_bases([BLOCK], [7], [{"layer": grads[:32]}, {"layer": grads[32:]}])["layer"]
    second = fit_bases([BLOCK], [7], [{"layer": grads[:32]}, {"layer": grads[32:]}])["layer"]
    assert torch.equal(first.out_vectors, second.out_vectors) and torch.equal(first.in_vectors, second.in_vectors)
    assert torch.equal(first.selected, second.selected)
    # Signs are fixed: each vector's largest-magnitude entry is positive.
    for vectors in (first.out_vectors, first.in_vectors):
        pivots = vectors[vectors.abs().argmax(dim=0), torch.arange(vectors.shape[1])]
        assert torch.all(pivots > 0)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="fitted basis for every block"):
        BlockProjector([BLOCK], ProjectionSpec(seed=0, k=6, kind="eigenbasis"))
    with pytest.raises(ValueError, match="at least one training row"):
        BasisFit([BLOCK]).bases([6])
    with pytest.raises(ValueError, match="eigenbasis_rows"):
        IndexConfig(ProjectionSpec(seed=0, k=6, kind="eigenbasis"), eigenbasis_rows=0)


@pytest.fixture(scope="module")
def trained():
    model = tiny_classifier(seed=1)
    data = topical_classification_inputs(48, 12, seed=5)
    return train(model, data, epochs=4), data


def test_an_eigenbasis_index_stores_its_basis_verifies_it_and_scores_queries_with_it(trained, tmp_path):
    model, data = trained
    config = IndexConfig(ProjectionSpec(seed=7, k=256, kind="eigenbasis"), shard_rows=20, eigenbasis_rows=30,
                         eigenbasis_fraction=0.75)
    batches = tiny_batches(data, lambda i: f"c{i % 12}")  # batches of 16 rows
    # A one-shot stream: the rows that fit the basis are buffered, then indexed with the rest.
    index = build_index(model, iter(batches), tmp_path / "idx", config, model_hash="sha256:tiny")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["projection"] == {"k": 256, "seed": 7, "kind": "eigenbasis", "fit_rows": 30,
                                      "eigen_fraction": 0.75}
    assert manifest["projection_file"]["file"] == "projection.safetensors"
    assert index.num_rows == 48 and index.verify().ok  # the buffered fit rows were indexed too, once each
    # Queries are projected with the stored basis: every training row fed back ranks itself first.
    attributor = Attributor(model, index)
    top = index.top_rows(attributor.query_features(data), top_k=1)
    assert top.positions[:, 0].tolist() == list(range(48))
    # The basis is the one fitted on the gradients of the first two batches (32 rows: the first ≥ 30), exactly.
    featurizer = attributor.featurizer  # one featurizer per model: each registers its own gradient hooks
    fitted = fit_bases(featurizer.blocks, featurizer.projector.block_dims,
                       [featurizer.per_example_gradients(batch.inputs) for batch in batches[:2]], fraction=0.75)
    stored = index.projection_bases()
    assert set(stored) == set(fitted) and len(stored) >= 2
    for name, basis in fitted.items():
        assert torch.equal(stored[name].selected, basis.selected)
        assert torch.allclose(stored[name].out_vectors, basis.out_vectors, atol=1e-6)
        assert torch.allclose(stored[name].in_vectors, basis.in_vectors, atol=1e-6)
    # A changed basis file is caught like any other file of the index.
    path = tmp_path / "idx" / "projection.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    report = index.verify()
    assert not report.ok and "projection.safetensors: sha256 mismatch" in report.problems
    # Queries go through the stored basis: the same features as projecting their gradients with it by hand.
    queries = random_classification_inputs(3, seed=9)
    by_hand = BlockProjector(featurizer.blocks, index.projection, bases=fitted).project(
        featurizer.per_example_gradients(queries))
    assert torch.allclose(attributor.query_features(queries), by_hand, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("curvature", ["fisher", "empirical_fisher"])
def test_keeping_the_fit_samples_gradients_changes_the_build_time_never_the_index(trained, tmp_path, monkeypatch,
                                                                                   curvature):
    """The fit pass keeps its rows' gradients (up to a memory budget) instead of taking them again: with no
    budget every row is read twice, with a budget for one batch the first is kept and the others read again,
    with room for all of them the fit sample is read once. All three indexes are the same, byte for byte."""
    import attribution.engine.gradients as gradients_module

    model, data = trained
    config = IndexConfig(ProjectionSpec(seed=7, k=256, kind="eigenbasis"), shard_rows=20, eigenbasis_rows=40,
                         eigenbasis_fraction=0.75, curvature=curvature)
    batches = tiny_batches(data, lambda i: f"c{i % 12}")  # 3 batches of 16 rows: all of them fit the basis
    featurizer = gradients_module.GradientFeaturizer(model)
    first = (featurizer.fisher_gradients(batches[0].inputs, seed=7).nbytes if curvature == "fisher" else
             sum(t.numel() * t.element_size() for t in featurizer.per_example_gradients(batches[0].inputs).values()))
    forward_passes = []
    original = gradients_module.GradientFeaturizer._gradients

    def counted(self, inputs, draws):  # every gradient the engine takes goes through one forward here
        forward_passes[-1] += 1
        return original(self, inputs, draws)

    monkeypatch.setattr(gradients_module.GradientFeaturizer, "_gradients", counted)
    hashes = []
    for budget in (0, first, 1 << 30):
        forward_passes.append(0)
        index = build_index(model, iter(batches), tmp_path / f"idx-{budget}", config, model_hash="sha256:tiny",
                            gradient_buffer_bytes=budget)
        assert index.verify().ok and index.num_rows == 48
        hashes.append(index.index_hash)
    assert hashes[0] == hashes[1] == hashes[2]
    # Fit pass 3 batches, then 3, 2 or 0 batches read again.
    assert forward_passes == [6, 5, 3]


def not_quite_kronecker_gradients(rows: int, seed: int) -> torch.Tensor:
    """Per-example gradients of one block that are a sum of two Kronecker terms per row (a layer that sees two
    tokens): their second moment is not a Kronecker product, so the leading Kronecker pairs are not its
    leading principal directions."""
    return kronecker_gradients(rows, seed) + kronecker_gradients(rows, seed + 100).flip(1)


def test_refining_keeps_the_sample_principal_directions_among_the_candidate_pairs():
    from attribution.engine.eigenbasis import refine

    grads = not_quite_kronecker_gradients(300, seed=4)
    k = 5
    plain = fit_bases([BLOCK], [k], [{"layer": grads}])
    fit = BasisFit([BLOCK])
    fit.add({"layer": grads})
    candidates = fit.bases([k], candidates=3)
    assert candidates["layer"].selected.shape[0] == 15 and plain["layer"].selected.shape[0] == 5
    refined = refine(candidates, [BLOCK], [k], 1.0, [{"layer": grads[:100]}, {"layer": grads[100:]}])["layer"]
    assert refined.mix.shape == (15, 5) and refined.kept == 5
    # Orthonormal directions: the mix's columns are orthonormal, and so are the dense block directions.
    assert torch.allclose(refined.mix.double().T @ refined.mix.double(), torch.eye(5, dtype=torch.float64), atol=1e-5)
    dense = refined.dense(BLOCK)
    assert torch.allclose(dense.T @ dense, torch.eye(5, dtype=torch.float64), atol=1e-5)

    unit = grads / torch.linalg.vector_norm(grads, dim=1, keepdim=True)  # every row one vote

    def energy(bases):
        projected = BlockProjector([BLOCK], ProjectionSpec(seed=0, k=k, kind="eigenbasis"), dtype=torch.float64,
                                   bases=bases).project({"layer": unit})
        return float((projected ** 2).sum() / (unit ** 2).sum())

    # The refined directions keep more of the rows than the five leading Kronecker pairs, and no more than the
    # five leading principal directions of the rows themselves (the best any 5-dim projection keeps).
    best = float(torch.linalg.svdvals(unit)[:k].pow(2).sum() / unit.pow(2).sum())
    assert energy(plain) + 0.02 < energy({"layer": refined}) <= best + 1e-9
    # One row with a gradient a thousand times longer than the others (a row the model never fitted) does not
    # take a direction of its own: the refined basis is nearly the same without it.
    outlier = torch.zeros(1, 18, dtype=torch.float64)
    outlier[0, 7] = 1000.0 * float(torch.linalg.vector_norm(grads, dim=1).max())
    steered = refine(candidates, [BLOCK], [k], 1.0, [{"layer": torch.cat([grads, outlier])}])["layer"]
    overlap = torch.linalg.svdvals(steered.dense(BLOCK).T @ refined.dense(BLOCK))
    assert float(overlap.min()) > 0.9
    # A deterministic function of the gradients: the same sample in other batches gives the same basis.
    again = refine(candidates, [BLOCK], [k], 1.0, [{"layer": grads}])["layer"]
    assert torch.allclose(again.mix, refined.mix, atol=1e-6)
    with pytest.raises(ValueError, match="eigenbasis_candidates"):
        IndexConfig(ProjectionSpec(seed=0, k=6, kind="eigenbasis"), eigenbasis_candidates=0.5)


def test_a_refined_index_stores_its_mix_and_does_not_depend_on_the_gradient_buffer(trained, tmp_path, monkeypatch):
    """With ``eigenbasis_candidates`` > 1 the fit sample's gradients are needed once more after the Kronecker fit:
    kept ones from memory, the others taken again. Whatever the buffer, the index is the same byte for byte, and
    queries are projected through the stored mix."""
    import attribution.engine.gradients as gradients_module

    model, data = trained
    config = IndexConfig(ProjectionSpec(seed=7, k=256, kind="eigenbasis"), shard_rows=20, eigenbasis_rows=40,
                         eigenbasis_fraction=0.75, eigenbasis_candidates=3, curvature="fisher")
    batches = tiny_batches(data, lambda i: f"c{i % 12}")
    featurizer = gradients_module.GradientFeaturizer(model)
    first = featurizer.fisher_gradients(batches[0].inputs, seed=7).nbytes
    forward_passes = []
    original = gradients_module.GradientFeaturizer._gradients

    def counted(self, inputs, draws):
        forward_passes[-1] += 1
        return original(self, inputs, draws)

    monkeypatch.setattr(gradients_module.GradientFeaturizer, "_gradients", counted)
    indexes = []
    for budget in (0, first, 1 << 30):
        forward_passes.append(0)
        indexes.append(build_index(model, iter(batches), tmp_path / f"idx-{budget}", config,
                                   model_hash="sha256:tiny", gradient_buffer_bytes=budget))
    assert len({index.index_hash for index in indexes}) == 1 and indexes[0].verify().ok
    # Fit pass 3 batches; the refinement takes 3, 2 or 0 of them again; the index reads 3, 2 or 0 again.
    assert forward_passes == [9, 7, 3]
    manifest = indexes[2].manifest
    assert manifest["projection"]["eigen_candidates"] == 3
    stored = indexes[2].projection_bases()
    assert all(basis.mix is not None and basis.mix.shape[0] == basis.selected.shape[0] for basis in stored.values())
    # Every training row fed back still ranks itself first, through the stored (refined) projection.
    attributor = Attributor(model, indexes[2])
    top = indexes[2].top_rows(attributor.query_features(data), top_k=1)
    assert top.positions[:, 0].tolist() == list(range(48))


def test_a_row_and_its_copies_share_one_vote_in_the_refinement():
    """Forty copies of one row (an uploader flooding the fit sample with someone's row, or their own) steer the
    principal directions when every row votes; weighted 1/|cluster|, as the build weights ingestion clusters, the
    copies count as the one row they copy and the basis is the one fitted on the sample with that row once."""
    from attribution.engine.eigenbasis import refine

    grads = not_quite_kronecker_gradients(300, seed=4)
    fit = BasisFit([BLOCK])
    fit.add({"layer": grads})
    candidates = fit.bases([5], candidates=3)
    once = refine(candidates, [BLOCK], [5], 1.0, [{"layer": grads}])["layer"]
    copied = torch.zeros(40, 18, dtype=torch.float64)
    copied[:, 11] = float(torch.linalg.vector_norm(grads, dim=1).median())  # a direction the sample rarely takes
    flooded = torch.cat([grads, copied[:1], copied[1:]])
    steered = refine(candidates, [BLOCK], [5], 1.0, [{"layer": flooded}])["layer"]
    weights = torch.cat([torch.ones(300, dtype=torch.float64), torch.full((40,), 1 / 40, dtype=torch.float64)])
    weighted = refine(candidates, [BLOCK], [5], 1.0, [{"layer": flooded}], row_weights=[weights])["layer"]
    alone = refine(candidates, [BLOCK], [5], 1.0, [{"layer": torch.cat([grads, copied[:1]])}])["layer"]

    def overlap(a, b) -> float:
        return float(torch.linalg.svdvals(a.dense(BLOCK).T @ b.dense(BLOCK)).min())

    assert overlap(steered, once) < 0.5  # the flood takes a direction of its own
    assert overlap(weighted, alone) > 0.999  # weighted, it is one row
    # Batches without weights (``None``) vote one per row, as before.
    assert torch.allclose(refine(candidates, [BLOCK], [5], 1.0, [{"layer": grads}], row_weights=[None])["layer"].mix,
                          once.mix)


def test_the_build_weights_the_fit_sample_by_its_ingestion_clusters(trained, tmp_path, monkeypatch):
    """The build hands the refinement 1/|cluster| per row, the cluster counted over the fit sample."""
    import attribution.engine.build_pass as build_pass

    _, data = trained
    batches = tiny_batches(data, lambda i: f"c{i % 12}", cluster_of=lambda i: "dup" if i in (3, 20, 21, 40) else
                           ("pair" if i in (5, 6) else None))
    weights = build_pass.duplicate_vote_weights(batches[:2])  # rows 0-31: "dup" has 3 rows there, "pair" 2
    assert [w if w is None else w.tolist() for w in weights] == [
        [1.0, 1.0, 1.0, 1 / 3, 1.0, 0.5, 0.5] + [1.0] * 9, [1.0] * 4 + [1 / 3, 1 / 3] + [1.0] * 10]
    assert build_pass.duplicate_vote_weights(tiny_batches(data, lambda i: "c")) == [None, None, None]

    seen = []
    original = build_pass.refine

    def spy(*args, **kwargs):
        seen.append(kwargs["row_weights"])
        return original(*args, **kwargs)

    monkeypatch.setattr(build_pass, "refine", spy)
    config = IndexConfig(ProjectionSpec(seed=7, k=256, kind="eigenbasis"), shard_rows=20, eigenbasis_rows=40,
                         eigenbasis_candidates=3, curvature="fisher")
    model, _ = trained
    build_index(model, iter(batches), tmp_path / "idx", config, model_hash="sha256:tiny")
    # The fit sample is the first 40 rows, read in batches of 16: rows 0-47; "dup" has rows 3, 20, 21, 40 there.
    assert len(seen) == 1 and [w if w is None else w.tolist() for w in seen[0]] == [
        [1.0, 1.0, 1.0, 0.25, 1.0, 0.5, 0.5] + [1.0] * 9, [1.0] * 4 + [0.25, 0.25] + [1.0] * 10,
        [1.0] * 8 + [0.25] + [1.0] * 7]
