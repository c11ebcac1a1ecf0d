"""The scan kernels and memory-mapped shards: exact enough, deterministic, and equal to the stored data."""

import json

import numpy as np
import pytest
import torch
from attr_tiny_models import random_classification_inputs, tiny_classifier, train, training_batches
from safetensors import safe_open

from attribution.engine.build import IndexConfig
from attribution.engine.build_pass import build_index
from attribution.engine.index import AttributionIndex, memory_mapped_tensor
from attribution.engine.projection import ProjectionSpec
from attribution.engine.query import Attributor
from attribution.engine.scan import compiled_kernel_failure, gathered_scores, scan_scores


def fp16_rows(n, k=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=generator).to(torch.float16)


def test_compiled_kernel_matches_a_float64_product_to_float32_accuracy():
    psi = fp16_rows(3000)
    queries = torch.randn(3, 256, generator=torch.Generator().manual_seed(1)) * 1e-6  # far below fp16's range
    reference = psi.double() @ queries.double().T
    compiled = scan_scores(psi, queries, kernel="compiled")
    assert compiled_kernel_failure() is None
    assert compiled.dtype == torch.float32 and compiled.shape == (3, 3000)
    assert float((compiled.T.double() - reference).abs().max() / reference.abs().max()) < 1e-5
    # torch's fp16 kernel returns fp16-rounded scores: same numbers to fp16 precision.
    mv = scan_scores(psi, queries, kernel="mv")
    assert float((mv.T.double() - reference).abs().max() / reference.abs().max()) < 2e-3


def test_a_rows_score_does_not_depend_on_the_rows_scanned_with_it():
    psi = fp16_rows(1000)
    query = torch.randn(1, 256, generator=torch.Generator().manual_seed(2))
    full = scan_scores(psi, query)
    pieces = torch.cat([scan_scores(psi[s : s + 77], query) for s in range(0, 1000, 77)], dim=1)
    assert torch.equal(full, pieces)
    assert torch.equal(scan_scores(psi[:1], query), full[:, :1])  # a one-row matrix too


def test_gathered_rows_score_bit_for_bit_like_a_full_scan_of_them():
    psi = fp16_rows(4000)
    query = torch.randn(256, generator=torch.Generator().manual_seed(4)) * 1e-5
    positions = torch.randperm(4000, generator=torch.Generator().manual_seed(5))[:1500]
    full = scan_scores(psi, query.unsqueeze(0))[0]
    gathered = gathered_scores(psi, positions, query, kernel="compiled")
    assert torch.equal(gathered, full[positions])  # a scattered pick, repeated positions allowed below
    repeated = torch.tensor([7, 7, 3999, 0])
    assert torch.equal(gathered_scores(psi, repeated, query), full[repeated])
    assert gathered_scores(psi, torch.tensor([], dtype=torch.int64), query).shape == (0,)
    # torch's own kernel on the gathered rows agrees to fp16 precision.
    mv = gathered_scores(psi, positions, query, kernel="mv")
    assert float((mv - full[positions]).abs().max() / full.abs().max()) < 2e-3
    with pytest.raises(ValueError, match="unknown scan kernel"):
        gathered_scores(psi, positions, query, kernel="fast")


def test_batched_queries_score_like_single_queries():
    psi = fp16_rows(5000)
    queries = torch.randn(12, 256, generator=torch.Generator().manual_seed(3))
    batched = scan_scores(psi, queries)  # one GEMM over fp32 chunks
    singles = torch.cat([scan_scores(psi, q.unsqueeze(0)) for q in queries])
    assert float((batched - singles).abs().max() / singles.abs().max()) < 1e-5


def test_scan_rejects_mismatched_shapes_and_unknown_kernels():
    psi = fp16_rows(10)
    with pytest.raises(ValueError, match="cannot score"):
        scan_scores(psi, torch.randn(1, 255))
    with pytest.raises(ValueError, match="cannot score"):
        scan_scores(psi, torch.randn(256))
    with pytest.raises(ValueError, match="unknown scan kernel"):
        scan_scores(psi, torch.randn(1, 256), kernel="blas")


@pytest.fixture(scope="module")
def small_model():
    model = tiny_classifier(seed=4)
    data = random_classification_inputs(40, seed=6)
    train(model, data, epochs=2)
    return model, data


@pytest.fixture(scope="module")
def small_index(small_model, tmp_path_factory):
    model, data = small_model
    directory = tmp_path_factory.mktemp("scan") / "idx"
    index = build_index(model, training_batches(data, lambda i: f"c{i % 5}"), directory,
                        IndexConfig(ProjectionSpec(seed=3, k=64), shard_rows=16), model_hash="m")
    return model, index


def test_memory_mapped_shards_hold_exactly_the_stored_rows(small_index):
    _model, index = small_index
    for number in range(index.num_shards):
        path = index.directory / index.manifest["shards"][number]["file"]
        with safe_open(str(path), framework="pt") as handle:
            stored, stored_scale = handle.get_tensor("psi"), float(handle.get_tensor("scale")[0])
        psi, scale = index.shard(number)
        assert psi.dtype == torch.float16 and torch.equal(psi, stored) and scale == stored_scale
        assert index.shard(number)[0] is psi  # the mapping is opened once


def test_resident_and_memory_mapped_indexes_score_identically(small_index):
    model, index = small_index
    queries = Attributor(model, index).query_features(random_classification_inputs(3, seed=8))
    resident = AttributionIndex(index.directory, keep_in_memory=True)
    assert torch.equal(resident.all_scores(queries), index.all_scores(queries))
    mapped, kept = index.top_rows(queries, 5), resident.top_rows(queries, 5)
    assert torch.equal(mapped.positions, kept.positions) and torch.equal(mapped.scores, kept.scores)


def test_memory_map_refuses_a_missing_tensor_or_a_corrupt_header(small_index, tmp_path):
    _model, index = small_index
    path = index.directory / index.manifest["shards"][0]["file"]
    with pytest.raises(ValueError, match="no memory-mappable tensor 'gradients'"):
        memory_mapped_tensor(path, "gradients")
    raw = path.read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_size])
    header["psi"]["data_offsets"][1] -= 2  # a byte range one value short of the shape
    patched = json.dumps(header, separators=(",", ":")).encode()
    assert len(patched) <= header_size
    patched = patched.ljust(header_size)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(raw[:8] + patched + raw[8 + header_size :])
    with pytest.raises(ValueError, match="does not match its shape"):
        memory_mapped_tensor(broken, "psi")


def _summed_row_scores(rows_index, queries):
    rows = rows_index.all_scores(queries).double().numpy()
    owners = np.array(rows_index.row_contributor_ids)
    return np.stack([rows[:, owners == c].sum(1) for c in rows_index.contributors], axis=1)


@pytest.mark.parametrize("rule", ["mean_eigenvalue", "weighted_mean_eigenvalue"])
def test_contributor_scores_are_plain_and_group_scores_credit_weighted_sums_of_the_stored_row_scores(small_model, tmp_path, rule):
    """One damping: the rows a receipt lists are scored exactly as payouts sum them (contributor matrix and
    credit groups alike), and the damping follows the configured rule."""
    model, data = small_model
    batches = training_batches(data, lambda i: f"c{i % 5}")
    config = IndexConfig(ProjectionSpec(seed=3, k=64), shard_rows=16, damping_ratio=0.1, damping_rule=rule)
    index = build_index(model, batches, tmp_path / "idx", config, model_hash="m")
    assert index.method["damping_rule"] == rule
    queries = Attributor(model, index).query_features(random_classification_inputs(2, seed=9))
    plain = index.all_scores(queries).double().numpy()
    rows = plain * index.credit().row_credit
    owners = np.array(index.row_contributor_ids)
    # Contributor scores: plain sums (the linear leave-one-contributor-out estimate); groups: credit-weighted.
    expected = np.stack([plain[:, owners == c].sum(1) for c in index.contributors], axis=1)
    actual = index.contributor_scores(queries).double().numpy()
    # fp16 storage of Ψ rows and of the matrices (each its own power-of-two scale).
    assert np.abs(actual - expected).max() / np.abs(expected).max() < 2e-3
    groups = index.credit().row_group
    expected_groups = np.stack([rows[:, groups == g].sum(1) for g in range(groups.max() + 1)], axis=1)
    actual_groups = index.group_scores(queries).double().numpy()
    assert np.abs(actual_groups - expected_groups).max() / np.abs(expected_groups).max() < 2e-3


def test_row_scores_gathered_across_shards_match_the_full_scan(small_model, tmp_path):
    """A receipt's rows are gathered from several shards (in any order, repeats allowed) into one buffer
    and scored in one kernel call; each score must equal that row's score in a full scan."""
    model, data = small_model
    index = build_index(model, training_batches(data, lambda i: f"c{i % 5}"), tmp_path / "idx",
                        IndexConfig(ProjectionSpec(seed=3, k=64), shard_rows=16), model_hash="m")
    assert len(index.manifest["shards"]) >= 3
    query = Attributor(model, index).query_features(random_classification_inputs(1, seed=4))
    full = index.all_scores(query).double().numpy()[0]
    positions = np.random.default_rng(0).permutation(index.num_rows)[: index.num_rows // 2]
    positions = np.r_[positions, positions[:3]]  # the same row twice is scored twice
    assert np.allclose(index.row_scores(positions, query[0]), full[positions], rtol=1e-5, atol=1e-9)
    assert index.row_scores(np.array([], dtype=np.int64), query[0]).shape == (0,)


def test_damping_rules_differ_as_documented(small_model, tmp_path):
    model, data = small_model
    batches = training_batches(data, lambda i: f"c{i % 5}")
    built = {rule: build_index(model, batches, tmp_path / rule, IndexConfig(ProjectionSpec(seed=3, k=64), damping_rule=rule,
                                                                           duplicate_cosine=None), model_hash="m")
             for rule in ("mean_eigenvalue", "weighted_mean_eigenvalue")}
    featurizer = Attributor(model, built["mean_eigenvalue"])
    phi = featurizer.query_features(data).double()
    fisher = phi.T @ phi / phi.shape[0]
    trace = float(torch.trace(fisher))
    assert built["mean_eigenvalue"].method["damping"] == pytest.approx(0.1 * trace / 64, rel=1e-6)
    assert built["weighted_mean_eigenvalue"].method["damping"] == pytest.approx(
        0.1 * float((fisher * fisher).sum()) / trace, rel=1e-6)


@pytest.mark.parametrize("field,value", [("damping_ratio", 0.0), ("damping_ratio", -1.0),
                                         ("damping_ratio", float("nan")), ("damping_ratio", "0.1")])
def test_damping_ratios_must_be_positive_numbers(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive number"):
        IndexConfig(ProjectionSpec(seed=3, k=64), **{field: value})
