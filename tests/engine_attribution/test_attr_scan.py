"""The scan kernels and memory-mapped shards: exact enough, deterministic, and equal to the stored data."""

import json

import numpy as np
import pytest
import torch
from attr_tiny_models import random_classification_inputs, tiny_classifier, train, training_batches
from safetensors import safe_open

from attribution.engine import (
    AttributionIndex,
    Attributor,
    IndexConfig,
    ProjectionSpec,
    build_index,
    compiled_kernel_failure,
    scan_scores,
)
from attribution.engine.index import memory_mapped_tensor


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


@pytest.mark.parametrize("contributor_damping_ratio", [None, 0.1, 2.0])
def test_contributor_scores_are_the_sums_of_row_scores_at_the_contributor_damping(small_model, tmp_path,
                                                                                  contributor_damping_ratio):
    """The contributor matrix sums each contributor's rows preconditioned at its own damping: with None,
    exactly the stored Ψ rows; otherwise the Ψ rows of ``config.for_contributor_scores()``."""
    model, data = small_model
    batches = training_batches(data, lambda i: f"c{i % 5}")
    config = IndexConfig(ProjectionSpec(seed=3, k=64), shard_rows=16, damping_ratio=0.1,
                         contributor_damping_ratio=contributor_damping_ratio)
    index = build_index(model, batches, tmp_path / "idx", config, model_hash="m")
    set_config = config.for_contributor_scores()
    assert set_config.damping_ratio == (contributor_damping_ratio or 0.1) and set_config.contributor_damping_ratio is None
    rows_index = build_index(model, batches, tmp_path / "set", set_config, model_hash="m")
    method = index.method
    assert method["contributor_damping_ratio"] == contributor_damping_ratio
    assert method["contributor_damping"] == pytest.approx(method["damping"] * (contributor_damping_ratio or 0.1) / 0.1)
    assert rows_index.method["damping"] == pytest.approx(method["contributor_damping"], rel=1e-12)
    queries = Attributor(model, index).query_features(random_classification_inputs(2, seed=9))
    expected = _summed_row_scores(rows_index, queries)
    actual = index.contributor_scores(queries).double().numpy()
    # fp16 storage of Ψ rows and of the contributor matrix (each its own power-of-two scale).
    assert np.abs(actual - expected).max() / np.abs(expected).max() < 2e-3
    if contributor_damping_ratio not in (None, 0.1):  # a different damping really gives different payout scores
        own_rows = _summed_row_scores(index, queries)
        assert np.abs(actual - own_rows).max() / np.abs(own_rows).max() > 1e-2


@pytest.mark.parametrize("field,value", [("damping_ratio", 0.0), ("damping_ratio", -1.0),
                                         ("contributor_damping_ratio", float("nan")),
                                         ("contributor_damping_ratio", 0), ("damping_ratio", "0.1")])
def test_damping_ratios_must_be_positive_numbers(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive number"):
        IndexConfig(ProjectionSpec(seed=3, k=64), **{field: value})
