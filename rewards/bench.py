"""Settlement throughput for `bench/payouts.py`: `fee_settle` calls per second on PostgreSQL.

A throwaway database `lineage_bench_payouts` is created next to `DATABASE_URL`'s (psycopg), migrated,
filled with payers, a model owner and contributors, and then `workers` processes each settle their own
stream of inferences (distinct payers, as real traffic has; the payer's credit row is the lock). The
figure is all settlements over the wall time from the common start to the last finish.
"""

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
BENCH_DB = "lineage_bench_payouts"
OPEN = 10**18


def _bench_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_DB}", parts.query, parts.fragment))


def _admin(url: str, statement: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, user=parts.username or "postgres",
                         password=parts.password, dbname=parts.path.lstrip("/") or "postgres", autocommit=True) as conn:
        conn.execute(statement)


def _django(url: str):
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "lineage.settings"
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


def _prepare(url: str, workers: int) -> dict:
    _django(url)
    from django.contrib.auth import get_user_model

    from rewards.services import credit_grant

    User = get_user_model()
    make = lambda name: User.objects.create(username=name, email=f"{name}@bench.local")  # noqa: E731
    payers = [make(f"payer{i}") for i in range(workers)]
    owner = make("owner")
    contributors = [make(f"contributor{i}") for i in range(5)]
    for payer in payers:
        credit_grant(actor=None, user=payer, amount=10**9 * OPEN, reason="bench")
    return {"payers": [p.pk for p in payers], "owner": owner.pk, "contributors": [c.pk for c in contributors]}


def _worker(args) -> tuple[float, float, int]:
    url, payer_id, owner_id, contributor_ids, count, start_at, tag = args
    _django(url)
    from django.contrib.auth import get_user_model

    from rewards.services import fee_settle

    User = get_user_model()
    payer, owner = User.objects.get(pk=payer_id), User.objects.get(pk=owner_id)
    shares = {cid: 1_000_000 // len(contributor_ids) for cid in contributor_ids}
    shares[contributor_ids[0]] += 1_000_000 - sum(shares.values())
    for i in range(20):  # warm up connections and caches
        fee_settle(inference_id=f"warm-{tag}-{i}", payer=payer, model_owner=owner, fee=OPEN // 1000 + i,
                   contributor_shares=shares, model_version_hash="b" * 64, receipt_id=None)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    for i in range(count):
        fee_settle(inference_id=f"{tag}-{i}", payer=payer, model_owner=owner, fee=OPEN // 1000 + i,
                   contributor_shares=shares, model_version_hash="b" * 64, receipt_id=f"r-{i}",
                   contributor_rows={contributor_ids[0]: ["row-1", "row-2"]})
    return started, time.time(), count


def settled_per_s(*, quick: bool, database_url: str | None = None, workers: int = 4) -> dict:
    url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_URL
    if not url.startswith(("postgres://", "postgresql://")):
        url = DEFAULT_URL
    bench_url = _bench_url(url)
    _admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    _admin(url, f"CREATE DATABASE {BENCH_DB}")
    try:
        env = {**os.environ, "DATABASE_URL": bench_url, "DJANGO_SETTINGS_MODULE": "lineage.settings"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        context = multiprocessing.get_context("spawn")
        results = {}
        with context.Pool(1) as pool:
            cast = pool.apply(_prepare, (bench_url, workers))
        count = 150 if quick else 1_000
        for n in sorted({1, workers}):
            start_at = time.time() + 8
            jobs = [(bench_url, cast["payers"][i], cast["owner"], cast["contributors"], count, start_at, f"w{n}-{i}")
                    for i in range(n)]
            with context.Pool(n) as pool:
                runs = pool.map(_worker, jobs)
            elapsed = max(end for _, end, _ in runs) - min(start for start, _, _ in runs)
            results[n] = sum(c for _, _, c in runs) / elapsed
        return {"settled_per_s": round(max(results.values())),
                **{f"settled_per_s_{n}proc": round(v) for n, v in results.items()}}
    finally:
        _admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
