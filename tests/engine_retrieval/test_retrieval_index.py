"""Index versions: ANN recall against exact search, verified files, empty indexes, several versions merged."""

import json

import numpy as np
import pytest

from retrieval.engine import (
    DenseParams,
    IndexIntegrityError,
    RetrievalError,
    Searcher,
    build_index,
    open_index,
    verify_index,
)


@pytest.fixture(scope="module")
def built(corpus, static_encoder, tmp_path_factory):
    directory = tmp_path_factory.mktemp("indexes") / "v1"
    manifest = build_index(directory, corpus, static_encoder, meta={"datanet_version": "v1"})
    return directory, manifest


def exact_top(vectors, queries, k):
    scores = queries @ vectors.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_ann_recall_at_10_against_exact_search_is_at_least_095(built, corpus, static_encoder):
    directory, manifest = built
    index = open_index(directory, manifest.index_id)
    assert len(index) == len(corpus) >= 3000
    vectors = static_encoder.encode([text for _, text in corpus])
    # Queries: the first half of 300 passages' words, a partial restatement of what the passage says.
    rng = np.random.default_rng(7)
    picked = rng.choice(len(corpus), size=300, replace=False)
    queries = static_encoder.encode([" ".join(corpus[i][1].split()[: max(4, len(corpus[i][1].split()) // 2)])
                                     for i in picked])
    truth = exact_top(vectors, queries, 10)
    recalls = []
    for query, expected in zip(queries, truth):
        positions, scores = index.dense_top(query, 10)
        recalls.append(len(set(positions.tolist()) & set(expected.tolist())) / 10)
        assert np.all(np.diff(scores) <= 1e-6)  # best first
        np.testing.assert_allclose(scores, vectors[positions] @ query, atol=1e-4)  # cosine similarities
    assert np.mean(recalls) >= 0.95


def test_search_returns_ids_scores_and_ranks_and_finds_a_passage_by_its_own_text(built, corpus, static_encoder):
    directory, manifest = built
    searcher = Searcher([open_index(directory)], static_encoder)
    passage_id, text = corpus[1234]
    for mode in ("dense", "lexical", "hybrid"):
        hits = searcher.search(text, k=5, mode=mode)
        assert [hit.rank for hit in hits] == [1, 2, 3, 4, 5]
        assert hits[0].passage_id == passage_id and hits[0].index_id == manifest.index_id
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    hybrid = searcher.search(text, k=5)  # both kinds of scoring available: hybrid by default
    assert hybrid[0].dense_rank == 1 and hybrid[0].lexical_rank == 1
    assert hybrid[0].score == pytest.approx(2 / 61)
    assert manifest.meta == {"datanet_version": "v1"} and manifest.lexical["scheme"] == "bm25"


def test_empty_index_builds_opens_and_returns_nothing(tmp_path, static_encoder):
    manifest = build_index(tmp_path / "empty", [], static_encoder)
    assert manifest.passage_count == 0 and set(manifest.files) == {"passages.arrow"}
    index = open_index(tmp_path / "empty", manifest.index_id)
    searcher = Searcher([index], static_encoder)
    assert searcher.search("anything at all", k=3) == []
    assert searcher.search("anything", k=3, mode="dense") == []


def test_tampered_or_damaged_files_fail_verification_with_a_clear_error(tmp_path, corpus, static_encoder):
    manifest = build_index(tmp_path / "v", corpus[:300], static_encoder)
    pristine = {path.name: path.read_bytes() for path in (tmp_path / "v").iterdir()}

    def restore():
        for name, data in pristine.items():
            (tmp_path / "v" / name).write_bytes(data)

    def problems_after(change):
        restore()
        change(tmp_path / "v")
        with pytest.raises(IndexIntegrityError) as caught:
            open_index(tmp_path / "v", manifest.index_id)
        assert caught.value.code == "index_corrupt"
        assert not verify_index(tmp_path / "v", manifest.index_id).ok
        return " ".join(caught.value.problems)

    def flip_byte(path, offset):
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    assert "dense.usearch does not match the sha256" in problems_after(lambda d: flip_byte(d / "dense.usearch", 5000))
    assert "bm25_weights.npy does not match" in problems_after(lambda d: flip_byte(d / "bm25_weights.npy", -1))
    assert "passages.arrow has" in problems_after(
        lambda d: (d / "passages.arrow").write_bytes((d / "passages.arrow").read_bytes()[:-8])
    )
    assert "dense.usearch is missing" in problems_after(lambda d: (d / "dense.usearch").unlink())

    def edit_manifest(directory):
        body = json.loads((directory / "manifest.json").read_bytes())
        body["passage_count"] = 299
        (directory / "manifest.json").write_text(json.dumps(body))

    assert "not the expected index id" in problems_after(edit_manifest)
    restore()
    assert verify_index(tmp_path / "v", manifest.index_id).ok
    with pytest.raises(IndexIntegrityError):
        open_index(tmp_path / "v", "0" * 64)
    (tmp_path / "v" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexIntegrityError, match="manifest.json unreadable"):
        open_index(tmp_path / "v")


def test_an_index_version_is_written_once_with_unique_ids_and_is_reproducible(tmp_path, corpus, static_encoder):
    first = build_index(tmp_path / "v", corpus[:10], static_encoder)
    assert build_index(tmp_path / "again", corpus[:10], static_encoder).index_id == first.index_id
    with pytest.raises(RetrievalError) as caught:
        build_index(tmp_path / "v", corpus[:10], static_encoder)
    assert caught.value.code == "index_exists"
    with pytest.raises(RetrievalError) as caught:
        build_index(tmp_path / "dup", corpus[:3] + corpus[:1], static_encoder)
    assert caught.value.code == "duplicate_passage_id"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "v"]  # nothing half-written left behind


def test_several_versions_are_searched_as_one_collection(tmp_path, corpus, static_encoder):
    first, second = corpus[:1500], corpus[1500:3000]
    v1 = open_index(build_index(tmp_path / "v1", first, static_encoder, meta={"v": 1}) and tmp_path / "v1")
    v2 = open_index(build_index(tmp_path / "v2", second, static_encoder, meta={"v": 2}) and tmp_path / "v2")
    searcher = Searcher([v1, v2], static_encoder)
    ids = [passage_id for passage_id, _ in corpus[:3000]]
    vectors = static_encoder.encode([text for _, text in corpus[:3000]])
    for passage_id, text in (corpus[10], corpus[2900]):
        hits = searcher.search(text, k=10, mode="dense")
        expected = [ids[i] for i in exact_top(vectors, static_encoder.encode([text]), 10)[0]]
        assert hits[0].passage_id == passage_id
        assert len({hit.passage_id for hit in hits} & set(expected)) >= 9
        assert {hit.index_id for hit in hits} <= {v1.index_id, v2.index_id}
        owner = v1.index_id if passage_id in dict(first) else v2.index_id
        assert hits[0].index_id == owner
        assert searcher.search(text, k=1)[0].passage_id == passage_id  # hybrid across versions too


def test_indexes_refuse_queries_from_another_model_and_params_are_recorded(tmp_path, corpus, static_encoder, minilm):
    params = DenseParams(connectivity=16, expansion_add=64, expansion_search=32, dtype="f16")
    manifest = build_index(tmp_path / "v", corpus[:50], static_encoder, lexical=False, params=params)
    assert manifest.dense["dtype"] == "f16" and manifest.dense["connectivity"] == 16 and manifest.lexical is None
    index = open_index(tmp_path / "v")
    with pytest.raises(RetrievalError) as caught:
        Searcher([index], minilm)
    assert caught.value.code == "model_mismatch"
    searcher = Searcher([index], static_encoder)
    with pytest.raises(RetrievalError) as caught:
        searcher.search("words", mode="hybrid")
    assert caught.value.code == "no_lexical"
    assert searcher.search(corpus[7][1], k=1)[0].passage_id == corpus[7][0]  # dense by default here
    with pytest.raises(RetrievalError) as caught:
        searcher.search("   ")
    assert caught.value.code == "empty_query"
