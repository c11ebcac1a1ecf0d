"""Benchmark of the Datanets ingestion engine (no database): parsing and near-duplicate search.

Measures, side by side in one run:
  * parse + validate + exact content hash throughput (rows/s) for JSON Lines and CSV uploads;
  * upload screening (exact dedup + near-dup query against the index + within-upload near-dups);
  * NearDupIndex build time, query latency (ms/row) and serialised size at the full index size;
  * datasketch's MinHash.bulk + MinHashLSH on the same rows, for comparison.

Usage: .venv/bin/python bench/ingest_engine.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datanets.ingest import (  # noqa: E402
    DatanetSchema,
    NearDupIndex,
    UploadScreener,
    encode_records,
    iter_rows,
    normalise_text,
)

SCHEMA = DatanetSchema("text-classification", ("positive", "negative", "neutral"), ("source",))


def synthetic_texts(count: int, seed: int) -> list[str]:
    """Review-like sentences of 8-40 words drawn from a 5,000-word vocabulary (~150 characters)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) for _ in range(count)]


def light_edit(text: str, rng: random.Random) -> str:
    words = text.split()
    words[rng.randrange(len(words))] = "edited"
    return " ".join(words)


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def bench_parse(rows: list[dict], fmt: str) -> dict:
    data = b"".join(encode_records(rows, ["text", "label", "source"], fmt, neutralise_formulas=False))
    results, seconds = timed(lambda: sum(r.accepted for r in iter_rows(io.BytesIO(data), f"u.{fmt}", SCHEMA)))
    assert results == len(rows)
    return {
        "rows": len(rows),
        "mb": round(len(data) / 1e6, 1),
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(rows) / seconds),
    }


def bench_index(texts: list[str], queries: list[str], edits: list[str]) -> dict:
    index, build_s = timed(lambda: NearDupIndex.build(enumerate(texts)))
    _, unrelated_s = timed(lambda: [index.query(q) for q in queries])
    found, edited_s = timed(lambda: [index.query(q) for q in edits])
    _, batched_s = timed(lambda: index.query_many(queries))
    blob, save_s = timed(index.to_bytes)
    _, load_s = timed(lambda: NearDupIndex.from_bytes(blob))
    hits = sum(m is not None and m.row_id == i for i, m in enumerate(found))
    return {
        "indexed_rows": len(texts),
        "build_s": round(build_s, 2),
        "query_ms_per_row_unrelated": round(1000 * unrelated_s / len(queries), 3),
        "query_ms_per_row_edited": round(1000 * edited_s / len(edits), 3),
        "query_many_ms_per_row": round(1000 * batched_s / len(queries), 3),
        "edited_found_share": round(hits / len(edits), 3),
        "serialised_mb": round(len(blob) / 1e6, 1),
        "save_s": round(save_s, 2),
        "load_s": round(load_s, 2),
    }, index


def bench_datasketch(texts: list[str], queries: list[str]) -> dict:
    from datasketch import MinHash, MinHashLSH

    def shingles(text: str) -> list[bytes]:
        norm = normalise_text(text, casefold=True)
        return [norm[i : i + 5].encode() for i in range(max(len(norm) - 4, 1))]

    def build():
        lsh = MinHashLSH(threshold=0.8, num_perm=128)
        for i, minhash in enumerate(MinHash.bulk([shingles(t) for t in texts], num_perm=128)):
            lsh.insert(i, minhash)
        return lsh

    lsh, build_s = timed(build)

    def query_all():
        for text in queries:
            minhash = MinHash(num_perm=128)
            minhash.update_batch(shingles(text))
            lsh.query(minhash)

    _, query_s = timed(query_all)
    return {
        "indexed_rows": len(texts),
        "build_s": round(build_s, 2),
        "query_ms_per_row": round(1000 * query_s / len(queries), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k rows instead of 100k")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    size = 20_000 if args.quick else 100_000
    rng = random.Random(7)
    texts = synthetic_texts(size, seed=1)
    labels = SCHEMA.label_set
    rows = [{"text": t, "label": labels[i % 3], "source": "bench"} for i, t in enumerate(texts)]
    queries = synthetic_texts(1000, seed=2)
    edits = [light_edit(t, rng) for t in texts[:1000]]

    report: dict = {"rows": size}
    report["parse_jsonl"] = bench_parse(rows, "jsonl")
    report["parse_csv"] = bench_parse(rows, "csv")
    report["near_dup_index"], index = bench_index(texts, queries, edits)

    upload = [{"text": t, "label": "positive"} for t in edits[:500] + queries[:500]]
    upload_data = b"".join(encode_records(upload, ["text", "label"], "jsonl"))

    def screen():
        screener = UploadScreener(SCHEMA, existing=set(), near_dup_index=index)
        return sum(
            bool(r.flags) for r in screener.screen_all(iter_rows(io.BytesIO(upload_data), "u.jsonl", SCHEMA))
        )

    flagged, screen_s = timed(screen)
    report["screen_upload"] = {
        "rows": len(upload),
        "flagged": flagged,
        "rows_per_s": round(len(upload) / screen_s),
    }
    ds_size = min(size, 20_000)
    report["datasketch"] = bench_datasketch(texts[:ds_size], queries)
    report["numpy_index_same_size_as_datasketch"] = bench_index(texts[:ds_size], queries, edits)[0]

    print(
        f"parse+validate+hash, {size:,} rows: JSONL {report['parse_jsonl']['rows_per_s']:,} rows/s, "
        f"CSV {report['parse_csv']['rows_per_s']:,} rows/s"
    )
    nd = report["near_dup_index"]
    print(
        f"NearDupIndex {size:,} rows: build {nd['build_s']} s, query {nd['query_ms_per_row_unrelated']} ms/row "
        f"(unrelated), {nd['query_ms_per_row_edited']} ms/row (edited), batched {nd['query_many_ms_per_row']} ms/row, "
        f"edited rows found {nd['edited_found_share']:.0%}, {nd['serialised_mb']} MB serialised, "
        f"load {nd['load_s']} s"
    )
    print(
        f"screen upload (exact + near-dup vs index + within upload): {report['screen_upload']['rows_per_s']:,} rows/s, "
        f"{flagged} of {len(upload)} flagged"
    )
    ds, own = report["datasketch"], report["numpy_index_same_size_as_datasketch"]
    print(
        f"at {ds_size:,} rows: datasketch build {ds['build_s']} s, query {ds['query_ms_per_row']} ms/row; "
        f"numpy index build {own['build_s']} s, query {own['query_ms_per_row_unrelated']} ms/row"
    )
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
