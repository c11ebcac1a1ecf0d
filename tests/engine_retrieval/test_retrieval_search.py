"""Search with the real bundled all-MiniLM-L6-v2: known answers, BM25 and reciprocal rank fusion."""

import numpy as np
import pytest

from retrieval.engine import Searcher, build_index, lexical_terms, open_index, reciprocal_rank_fusion
from retrieval.engine.lexical import BM25Builder, BM25Scorer

PASSAGES = {
    "volcano": "Volcanoes erupt when molten rock called magma rises through the crust and escapes to the surface.",
    "bread": "To bake bread, mix flour, water, salt and yeast, knead the dough, let it rise, then bake it hot.",
    "tides": "Ocean tides are caused mainly by the gravitational pull of the Moon on the Earth's water.",
    "photosynthesis": "Plants use sunlight, water and carbon dioxide to make sugar and oxygen in photosynthesis.",
    "bitcoin": "A blockchain is a shared ledger in which each block of transactions references the previous one.",
    "vaccine": "Vaccines train the immune system to recognise a pathogen without causing the disease itself.",
    "chess": "In chess, castling moves the king two squares toward a rook and the rook to the other side.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee under high pressure.",
    "part-7731": "Replacement gasket for pump model ZX-7731, nitrile rubber, fits housings made after 2019.",
    "marathon": "A marathon is a long-distance foot race over 42.195 kilometres, run on roads.",
}


@pytest.fixture(scope="module")
def searcher(minilm, tmp_path_factory):
    directory = tmp_path_factory.mktemp("known") / "v1"
    build_index(directory, PASSAGES.items(), minilm)
    return Searcher([open_index(directory)], minilm)


@pytest.mark.parametrize(
    "query, answer",
    [
        ("why does lava come out of mountains", "volcano"),
        ("what makes the sea level go up and down every day", "tides"),
        ("how do I make a loaf at home", "bread"),
        ("how do plants produce oxygen", "photosynthesis"),
        ("how are immunisations protecting people", "vaccine"),
    ],
)
def test_a_paraphrased_question_finds_its_passage_first(searcher, query, answer):
    # These questions share no content word with their passage: meaning alone has to find it.
    assert searcher.search(query, k=3, mode="dense")[0].passage_id == answer


@pytest.mark.parametrize(
    "query, answer",
    [
        ("what causes ocean tides", "tides"),
        ("espresso coffee pressure", "coffee"),
        ("castling the king in chess", "chess"),
        ("how does a blockchain ledger work", "bitcoin"),
    ],
)
def test_hybrid_search_puts_the_passage_that_wins_both_lists_first(searcher, query, answer):
    hit = searcher.search(query, k=3)[0]
    assert (hit.passage_id, hit.dense_rank, hit.lexical_rank) == (answer, 1, 1)
    assert hit.score == pytest.approx(2 / 61)


def test_a_rare_exact_term_is_found_by_bm25_and_survives_fusion(searcher):
    lexical = searcher.search("ZX-7731", k=3, mode="lexical")
    assert [hit.passage_id for hit in lexical] == ["part-7731"]  # only it shares a term
    fused = searcher.search("ZX-7731 gasket", k=3)
    assert fused[0].passage_id == "part-7731" and fused[0].lexical_rank == 1


def test_query_embeddings_match_sentence_transformers_unit_vectors(minilm):
    vectors = minilm.encode(["first text", "a second, different text"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.identity["dimension"] == 384 and minilm.identity["max_tokens"] == 256
    assert minilm.encode([]).shape == (0, 384)


def test_reciprocal_rank_fusion_follows_its_formula():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], rrf_k=60)
    assert fused == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61})


def test_bm25_scores_follow_the_lucene_formula(tmp_path):
    texts = ["the cat sat on the mat", "the dog sat", "cats and dogs", "the the the cat"]
    builder = BM25Builder()
    for text in texts:
        builder.add(text)
    builder.write(tmp_path)
    scorer = BM25Scorer(tmp_path, len(texts))
    positions, scores = scorer.top("Cat SAT", 10)
    lengths = [len(lexical_terms(t)) for t in texts]
    average = sum(lengths) / len(lengths)

    def expected(doc):
        total = 0.0
        for term in ("cat", "sat"):
            df = sum(term in lexical_terms(t) for t in texts)
            tf = lexical_terms(texts[doc]).count(term)
            idf = np.log(1 + (len(texts) - df + 0.5) / (df + 0.5))
            total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * lengths[doc] / average)) if tf else 0
        return total

    ranked = sorted((0, 1, 3), key=lambda doc: -expected(doc))
    assert positions.tolist() == ranked  # "cats and dogs" shares no term ("cats" is not "cat")
    np.testing.assert_allclose(scores, [expected(doc) for doc in ranked], rtol=1e-5)
    assert scorer.top("the", 5)[0].size == 0  # a stop word matches nothing
    assert scorer.top("unseen words", 5)[0].size == 0
