"""Index build, scoring, storage integrity, receipts and the attribution properties payouts rely on."""

import json

import numpy as np
import pytest
import torch
from attr_tiny_models import (
    causal_inputs,
    random_classification_inputs,
    slice_inputs,
    tiny_causal_lm,
    tiny_classifier,
    topical_classification_inputs,
    train,
    training_batches,
)
from scipy.stats import spearmanr

from attribution.engine.build import IndexConfig
from attribution.engine.build_pass import build_index
from attribution.engine.gradients import GradientFeaturizer
from attribution.engine.index import AttributionIndex, merge_top_rows
from attribution.engine.projection import BlockProjector, ProjectionSpec
from attribution.engine.query import Attributor
from attribution.engine.receipt import build_receipt, receipt_digest

N_ROWS = 48
CONTRIBUTORS = 12


def contributor_of(i):
    return f"c{i % CONTRIBUTORS}"


@pytest.fixture(scope="module")
def trained_classifier():
    model = tiny_classifier(seed=1)
    data = topical_classification_inputs(N_ROWS, CONTRIBUTORS, seed=5)
    return train(model, data, epochs=4), data


def build(model, data, path, k=256, seed=7, curvature="empirical_fisher", cluster_of=None, shard_rows=20, n=None,
          **options):
    batches = training_batches(data if n is None else slice_inputs(data, slice(0, n)), contributor_of,
                               cluster_of=cluster_of)
    config = IndexConfig(ProjectionSpec(seed=seed, k=k), curvature=curvature, shard_rows=shard_rows, **options)
    return build_index(model, batches, path, config, model_hash="sha256:tiny")


def test_each_training_row_ranks_itself_first(trained_classifier, tmp_path):
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx")
    assert index.num_shards == 3  # 48 rows in shards of 20: scoring crosses shard boundaries
    top = Attributor(model, index).index.top_rows(Attributor(model, index).query_features(data), top_k=3)
    assert top.positions[:, 0].tolist() == list(range(N_ROWS))


@pytest.mark.parametrize("k", [32, 128])  # 48 rows: k=32 factorises F, k=128 goes through the Gram matrix
def test_index_scores_equal_dense_damped_fisher_influence(trained_classifier, tmp_path, k):
    model, data = trained_classifier
    # No gradient-similarity clustering: this checks the preconditioner's algebra with every row weighted 1.
    index = build(model, data, tmp_path / "idx", k=k, duplicate_cosine=None)
    featurizer = GradientFeaturizer(model)
    featurizer.projector = BlockProjector(featurizer.blocks, index.projection)
    phi = featurizer.features(data).double()
    fisher = phi.T @ phi / N_ROWS
    damping = 0.1 * torch.trace(fisher) / k
    assert index.method["damping"] == pytest.approx(float(damping), rel=1e-9)
    queries = featurizer.features(random_classification_inputs(4, seed=9)).double()
    expected = queries @ torch.linalg.solve(fisher + damping * torch.eye(k, dtype=torch.float64), phi.T)
    actual = index.all_scores(queries.float()).double()
    assert float((actual - expected).abs().max() / expected.abs().max()) < 5e-3  # fp16 storage


def test_shard_ranges_scored_separately_merge_to_the_full_top_k(trained_classifier, tmp_path):
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx")
    queries = Attributor(model, index).query_features(random_classification_inputs(5, seed=11))
    full = index.top_rows(queries, top_k=7)
    parts = [index.score_shard_range(queries, s, s + 1, top_k=7) for s in range(index.num_shards)]
    merged = merge_top_rows(parts, top_k=7)
    assert torch.equal(merged.positions, full.positions)
    assert torch.equal(merged.scores, full.scores)
    dense = index.all_scores(queries)
    assert torch.equal(dense.topk(7, dim=1).indices, full.positions)


def test_planted_copy_of_a_row_gives_its_contributor_the_largest_share(trained_classifier, tmp_path):
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx")
    attributor = Attributor(model, index)
    planted_row = 13
    query = slice_inputs(data, slice(planted_row, planted_row + 1))
    (result,) = attributor.attribute(query)
    assert result.top_rows[0].row_id == f"row{planted_row}"
    winner = max(result.shares.shares, key=result.shares.shares.get)
    assert winner == contributor_of(planted_row)


def test_duplicating_a_row_in_one_cluster_does_not_increase_its_contributors_share(trained_classifier, tmp_path):
    model, data = trained_classifier
    duplicated = {key: torch.cat([value, value[13:14]]) for key, value in data.items()}

    def shares_for(inputs, cluster_of, path, duplicate_cosine=0.99):
        batches = training_batches(inputs, lambda i: contributor_of(13 if i == N_ROWS else i), cluster_of=cluster_of)
        # One credit group either way, so adding a row cannot regroup the others.
        config = IndexConfig(ProjectionSpec(seed=7, k=256), shard_rows=20, group_size=64, min_groups=1,
                             duplicate_cosine=duplicate_cosine)
        index = build_index(model, batches, path, config, model_hash="m")
        (result,) = Attributor(model, index).attribute(slice_inputs(data, slice(13, 14)))
        assert not result.shares.is_empty
        return result.shares.shares.get(contributor_of(13), 0.0), index

    def cluster(i):
        return "dup13" if i in (13, N_ROWS) else f"u{i}"

    original, _ = shares_for(data, cluster, tmp_path / "a")
    with_duplicate, index = shares_for(duplicated, cluster, tmp_path / "b")
    assert index.manifest["credit"]["duplicate_rows_uncredited"] >= 1
    # Equal up to fp16 storage rounding (the duplicate changes one shard's fp16 scale).
    assert with_duplicate == pytest.approx(original, abs=1e-3)
    # Without an ingestion cluster id the copy's identical gradient puts it in the same duplicate cluster.
    by_gradient, index = shares_for(duplicated, None, tmp_path / "c")
    assert index.manifest["credit"]["gradient_duplicate_pairs"] >= 1
    assert by_gradient == pytest.approx(original, abs=1e-3)
    # With neither rule the copy would double-count: the cluster rules are what prevent it.
    without_clusters, _ = shares_for(duplicated, None, tmp_path / "d", duplicate_cosine=None)
    assert without_clusters > original + 1e-3


@pytest.fixture(scope="module")
def topical_contributors():
    """12 contributors, each uploading rows on their own topic (80% topical tokens), and 48 queries
    that are each about one topic: every query has contributors that clearly matter to it."""
    data = topical_classification_inputs(N_ROWS, CONTRIBUTORS, seed=5, topic_fraction=0.8)
    queries = topical_classification_inputs(48, CONTRIBUTORS, seed=21, topic_fraction=0.8)
    return train(tiny_classifier(seed=1), data, epochs=4), data, queries


@pytest.mark.parametrize("seeds", [(1, 2), (3, 4)])
def test_contributor_scores_and_shares_are_stable_across_projection_seeds(topical_contributors, tmp_path, seeds):
    # Default k=1024 against d=1,123 trainable parameters, so each block keeps ~91% of its
    # dimensions: the orthogonal projection (the default) makes that nearly exact, where i.i.d.
    # Gaussian blocks measured a mean Spearman of only 0.77-0.84 here (see projection.py).
    model, data, queries = topical_contributors
    results = []
    for seed in seeds:
        index = build(model, data, tmp_path / f"s{seed}", k=1024, seed=seed)
        assert index.projection.kind == "orthogonal"
        results.append(Attributor(model, index).attribute(queries))
    first, second = ([[r.contributor_scores[c] for c in index.contributors] for r in rs] for rs in results)
    correlations = [spearmanr(a, b).statistic for a, b in zip(first, second)]
    assert np.mean(correlations) >= 0.9
    # What gets paid agrees: the top contributor of almost every query, and the share vectors.
    assert (np.argmax(first, axis=1) == np.argmax(second, axis=1)).mean() >= 0.9
    shares = [[[r.payout.shares.get(c, 0.0) for c in index.contributors] for r in rs] for rs in results]
    total_variation = 0.5 * np.abs(np.array(shares[0]) - np.array(shares[1])).sum(axis=1)
    # Shares are paid through credit groups that k-means forms from the projected gradients; on 48 rows in
    # 8 groups two seeds partition the rows differently (adjusted Rand 0.63 measured), which moves 0.21-0.27
    # of the pool on average (the old per-account policy moved under 0.2; one group moves 0.04 but leaves
    # 23% of these queries to the fallback).
    assert total_variation.mean() <= 0.3


def test_receipts_reproduce_bit_for_bit_from_the_index(trained_classifier, tmp_path):
    model, data = trained_classifier
    index = build(model, data, tmp_path / "a")
    rebuilt = build(model, data, tmp_path / "b")
    assert rebuilt.index_hash == index.index_hash
    query = random_classification_inputs(2, seed=31)
    receipts = [build_receipt(r, index, "inf-1") for r in Attributor(model, index).attribute(query)]
    reopened = AttributionIndex(tmp_path / "a")
    again = [build_receipt(r, reopened, "inf-1") for r in Attributor(model, reopened).attribute(query)]
    for first, second in zip(receipts, again):
        assert json.loads(json.dumps(first)) == first  # plain JSON
        assert receipt_digest(first) == receipt_digest(second)
        assert first["index_hash"] == index.index_hash and first["model_hash"] == "sha256:tiny"
        assert sum(first["shares_ppm"].values()) in (0, 1_000_000)
    assert receipt_digest(receipts[0]) != receipt_digest(receipts[1])


def test_verify_detects_a_tampered_shard_and_manifest(trained_classifier, tmp_path):
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx")
    report = index.verify(expected_index_hash=index.index_hash)
    assert report.ok and report.problems == []
    shard = tmp_path / "idx" / "shard_00001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 0x01
    shard.write_bytes(bytes(raw))
    report = index.verify()
    assert not report.ok and report.problems == ["shard_00001.safetensors: sha256 mismatch"]

    other = build(model, data, tmp_path / "idx2")
    manifest_path = tmp_path / "idx2" / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    manifest["row_contributor_ids"][0] = "c5"
    manifest_path.write_text(json.dumps(manifest))
    assert not AttributionIndex(tmp_path / "idx2").verify(expected_index_hash=other.index_hash).ok


def test_an_index_only_accepts_the_adapter_layout_it_was_built_on(trained_classifier, tmp_path):
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx", n=16)
    with pytest.raises(ValueError, match="differ"):
        Attributor(tiny_classifier(rank=2), index)


def test_causal_lm_training_rows_rank_themselves_first_and_fisher_sampling_is_reproducible(tmp_path):
    model = tiny_causal_lm(seed=3)
    prompts = [f"Q{i}: what is {i}+{i}? A:" for i in range(12)]
    responses = [f" {2 * i} is the sum" for i in range(12)]
    data = causal_inputs(prompts, responses, length=32)
    batches = training_batches(data, contributor_of, batch_size=6)
    index = build_index(model, batches, tmp_path / "lm", IndexConfig(ProjectionSpec(seed=3, k=128)), model_hash="lm")
    results = Attributor(model, index).attribute(data, top_k_rows=1)
    assert [r.top_rows[0].row_id for r in results] == [f"row{i}" for i in range(12)]

    # True-Fisher curvature samples labels from the model; the draws derive from the recorded seed.
    fisher = IndexConfig(ProjectionSpec(seed=3, k=128), curvature="fisher", fisher_samples=2)
    first = build_index(model, batches, tmp_path / "f1", fisher, model_hash="lm")
    second = build_index(model, batches, tmp_path / "f2", fisher, model_hash="lm")
    assert first.method["curvature"] == "fisher" and first.index_hash == second.index_hash
    assert first.method["damping"] != index.method["damping"]


def test_groups_are_paid_when_they_beat_their_measured_null_at_the_false_discovery_rate(trained_classifier, tmp_path):
    """Shares come from the credit groups that pass Benjamini-Hochberg on z = S_g / (|q| σ_g), σ_g measured on
    the null queries at build; only rows of those groups are paid, each account the sum of its rows."""
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx")
    tables = index.credit()
    assert index.manifest["credit"]["null_source"] == "train" and index.manifest["credit"]["null_queries"] == N_ROWS
    assert np.isfinite(tables.group_noise).all() and (tables.group_noise > 0).all()
    attributor = Attributor(model, index)
    inputs = slice_inputs(data, slice(0, 12))
    queries = attributor.query_features(inputs).double()
    group_scores = index.group_scores(queries.float()).double().numpy()
    for q, result in enumerate(attributor.attribute(inputs)):
        z = group_scores[q] / (float(queries[q].norm()) * tables.group_noise)
        order = np.argsort(-z)
        passing = [r for r in range(len(z)) if z[order[r]] >= attributor.thresholds[r]]
        expected = set(order[: passing[-1] + 1].tolist()) if passing else set()
        assert result.shares.groups_discovered == len(expected)
        if not expected:
            assert result.shares.is_empty and "noise" in result.shares.reason
            assert result.payout.basis == "rows" and sum(result.payout.shares_ppm.values()) == 1_000_000
            continue
        paid_rows = {row for rows in result.shares.rows.values() for row, _ in rows}
        allowed = {index.row_ids[p] for p in range(index.num_rows) if tables.row_group[p] in expected}
        assert paid_rows <= allowed
        assert sum(result.shares.shares_ppm.values()) == 1_000_000
        assert result.payout is result.shares and result.shares.basis == "attribution"
    # The queried row's own contributor is paid on most queries (its row ranks itself first).
    paid_own = [contributor_of(q) in r.payout.shares for q, r in enumerate(attributor.attribute(inputs))]
    assert np.mean(paid_own) >= 0.75


def test_probed_search_equals_the_scan_when_every_group_is_probed_and_finds_a_fed_back_row(trained_classifier,
                                                                                           tmp_path):
    """Large indexes search a receipt's most similar rows in the best credit groups (an inverted file): with
    every group probed it is the exact scan; with a quarter of them, a training row fed back still finds itself."""
    model, data = trained_classifier
    index = build(model, data, tmp_path / "idx")
    groups = index.manifest["credit"]["groups"]
    inputs = slice_inputs(data, slice(0, 16))
    exact = Attributor(model, index, probe_groups=0).attribute(inputs, top_k_rows=5)
    everything = Attributor(model, index, probe_groups=groups).attribute(inputs, top_k_rows=5)
    for a, b in zip(exact, everything):
        assert [r.row_id for r in a.top_rows] == [r.row_id for r in b.top_rows]
        assert [r.score for r in a.top_rows] == pytest.approx([r.score for r in b.top_rows], rel=1e-5)
        assert a.shares.shares == b.shares.shares  # probing changes which rows are listed, never what is paid
    quarter = Attributor(model, index, probe_groups=max(1, groups // 4)).attribute(inputs, top_k_rows=1)
    assert [r.top_rows[0].row_id for r in quarter] == [f"row{i}" for i in range(16)]
