"""Benchmark of document extraction and the retrieval engine (no database).

Measures, in one run:
  * extraction + passage splitting speed per format (.md, .html, .pdf, .docx built here with the
    libraries that read them), in MB/s of extracted text and passages/s;
  * all-MiniLM-L6-v2 embedding throughput (passages/s) and the encode latency of one 8-word query;
  * for N passages (real standard-library docstrings, then mixes of their sentences) embedded with the
    mean of MiniLM's input embeddings (cheap, real vocabulary geometry): index build time, size on disk,
    open time (with and without re-hashing), p50/p99 latency of dense, lexical and hybrid queries, and
    recall@10 of the HNSW index against exact search;
  * recall@10 on real MiniLM embeddings of a smaller set.

Usage: .venv/bin/python bench/retrieval.py [--quick] [--json] [--passages N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The repository root goes before bench/ (sys.path[0] when run as a script), where this very file would
# otherwise shadow the retrieval package.
sys.path.insert(0, str(ROOT))
# The document builders and the corpus are the ones the engine tests use.
sys.path.insert(0, str(ROOT / "tests" / "engine_ingest"))
sys.path.insert(0, str(ROOT / "tests" / "engine_retrieval"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from document_builders import text_pdf, word_document  # noqa: E402
from retrieval_corpus import StaticMiniLMEncoder, passages  # noqa: E402

from datanets.ingest.documents import extract_document  # noqa: E402
from datanets.ingest.passages import split_passages  # noqa: E402
from retrieval.engine import PassageEncoder, Searcher, build_index, open_index  # noqa: E402


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 3)


def sample_documents(texts: list[str]) -> dict[str, bytes]:
    chapters = [texts[i : i + 10] for i in range(0, len(texts), 10)]
    markdown = "\n\n".join(f"## Chapter {n}\n\n" + "\n\n".join(c) for n, c in enumerate(chapters))
    html = "<html><body><main>" + "".join(
        f"<h2>Chapter {n}</h2>" + "".join(f"<p>{p}</p>" for p in c) for n, c in enumerate(chapters)
    ) + "</main></body></html>"

    def build_docx(document):
        for n, chapter in enumerate(chapters):
            document.add_heading(f"Chapter {n}", level=2)
            for paragraph in chapter:
                document.add_paragraph(paragraph)

    def pdf_lines(chapter):  # Helvetica lines of about 90 characters, latin-1 only
        words = " ".join(chapter).encode("latin-1", "replace").decode("latin-1").split()
        lines, line = [], ""
        for word in words:
            if len(line) + len(word) > 90:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        return [*lines, line][:48]

    return {
        "guide.md": markdown.encode(),
        "guide.html": html.encode(),
        "guide.docx": word_document(build_docx),
        "guide.pdf": text_pdf([pdf_lines(chapter) for chapter in chapters]),
    }


def bench_documents(texts: list[str]) -> dict:
    figures = {}
    documents = sample_documents(texts)
    for name, data in documents.items():  # imports and the tokenizer load outside the timings
        split_passages(extract_document(data, name))
    for name, data in documents.items():
        document, extract_s = timed(lambda data=data, name=name: extract_document(data, name))
        pieces, split_s = timed(lambda document=document: split_passages(document))
        figures[name.split(".")[1]] = {
            "file_kb": round(len(data) / 1024, 1),
            "text_kb": round(len(document.text) / 1024, 1),
            "passages": len(pieces),
            "extract_mb_per_s": round(len(document.text) / 1e6 / extract_s, 2),
            "split_passages_per_s": round(len(pieces) / split_s),
        }
    return figures


def recall_at_10(index, vectors: np.ndarray, queries: np.ndarray) -> float:
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    found = [set(index.dense_top(q, 10)[0].tolist()) & set(t.tolist()) for q, t in zip(queries, truth)]
    return round(float(np.mean([len(f) / 10 for f in found])), 4)


def bench_index(corpus: list[tuple[str, str]], encoder, query_count: int, workdir: Path) -> dict:
    manifest, build_s = timed(lambda: build_index(workdir / "index", corpus, encoder))
    size = sum(entry["bytes"] for entry in manifest.files.values())
    _, open_hashed_s = timed(lambda: open_index(workdir / "index", manifest.index_id))
    index, open_s = timed(lambda: open_index(workdir / "index", manifest.index_id, verify_hashes=False))
    rng = np.random.default_rng(0)
    picked = rng.choice(len(corpus), size=query_count, replace=False)
    queries = [" ".join(corpus[i][1].split()[: max(4, len(corpus[i][1].split()) // 2)]) for i in picked]
    query_vectors = encoder.encode(queries)
    searcher = Searcher([index], encoder)
    latency = {}
    for mode in ("dense", "lexical", "hybrid"):
        seconds = []
        for query, vector in zip(queries, query_vectors):
            _, elapsed = timed(lambda q=query, v=vector, m=mode: searcher.search(q, 10, mode=m, query_vector=v))
            seconds.append(elapsed)
        latency[mode] = {"p50_ms": percentile_ms(seconds, 50), "p99_ms": percentile_ms(seconds, 99)}
    vectors = encoder.encode([text for _, text in corpus])
    return {
        "passages": len(corpus),
        "build_s": round(build_s, 2),
        "index_mb": round(size / 1e6, 1),
        "open_verified_ms": round(open_hashed_s * 1000, 1),
        "open_unhashed_ms": round(open_s * 1000, 1),
        "query_latency": latency,
        "recall_at_10": recall_at_10(index, vectors, query_vectors),
    }


def bench_minilm(corpus: list[tuple[str, str]], workdir: Path) -> dict:
    encoder = PassageEncoder()
    texts = [text for _, text in corpus]
    encoder.encode(texts[:8])  # load the model outside the timings
    vectors, encode_s = timed(lambda: encoder.encode(texts))
    questions = [" ".join(text.split()[:8]) for text in texts[:50]]  # query-sized, not passage-sized
    single = [timed(lambda q=q: encoder.encode([q]))[1] for q in questions]
    build_index(workdir / "minilm", corpus, encoder)
    index = open_index(workdir / "minilm")
    queries = encoder.encode([" ".join(t.split()[: max(4, len(t.split()) // 2)]) for t in texts[:100]])
    return {
        "passages": len(texts),
        "embed_passages_per_s": round(len(texts) / encode_s, 1),
        "query_encode_p50_ms": percentile_ms(single, 50),
        "query_encode_p99_ms": percentile_ms(single, 99),
        "recall_at_10": recall_at_10(index, vectors, queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 passages and a small MiniLM sample")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--passages", type=int, help="index size (default 20,000; 3,000 with --quick)")
    args = parser.parse_args()
    count = args.passages or (3_000 if args.quick else 20_000)
    corpus = passages(count)
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        results = {
            "documents": bench_documents([text for _, text in corpus[:400]]),
            "index": bench_index(corpus, StaticMiniLMEncoder(), 100 if args.quick else 300, workdir),
            "minilm": bench_minilm(corpus[: 96 if args.quick else 512], workdir),
        }
    if args.json:
        print(json.dumps(results))
    else:
        for section, figures in results.items():
            print(f"{section}: {json.dumps(figures, indent=2)}")


if __name__ == "__main__":
    main()
