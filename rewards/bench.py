"""Fee settlement throughput for `bench/payouts.py`, on PostgreSQL, through the real path.

A throwaway database `lineage_bench_payouts` is created next to `DATABASE_URL`'s (psycopg), copied from a
migrated template kept between runs (`lineage_bench_payouts_template`, rebuilt when a migration changes),
and filled with payers, a model owner and contributors (5 per receipt). Each step runs in spawned processes,
each with its own connection:

1. **record**: `workers` processes record inference fees with `services.fee_record`, one transaction per
   inference as a request makes it (the pending row + the hold on the payer's credit), each process with
   its own payers. Figure: `recorded_per_s` (a request does this inside its own transaction).
2. **settle**: rounds of 1, 2 (and 4) settling processes side by side, each calling
   `services.fee_settle_batch` (batches of `REWARDS_SETTLE_BATCH`; SKIP LOCKED hands them different
   fees) until the round's fees are booked. Figure: `settled_per_s`, fees booked over the wall time from
   the round's common start to its last finish, best round; and `settled_per_cpu_s`, the same fees over
   the CPU seconds the settlers *and their PostgreSQL backends* used (read from /proc when the server is
   local), which a busy machine disturbs much less than wall time.
3. **end to end** (not in `--quick`): recorders and one settler at once, from the first record to the
   last fee booked. Figure: `end_to_end_per_s`; on a machine with few cores the recorders bound it.
4. One batch of `REWARDS_SETTLE_BATCH` fees under `CaptureQueriesContext`: `queries_per_batch` and
   `queries_per_settlement`; then `ledger_check()` (`ledger_ok`).
"""

import hashlib
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
CONTRIBUTORS = 5  # per receipt, as before: 1 owner share + 5 contributor shares per fee
PAYERS_PER_WORKER = 8


def _bench_url(url: str, name: str = BENCH_DB) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(url: str, statement: str, params=()):
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, user=parts.username or "postgres",
                         password=parts.password, dbname=parts.path.lstrip("/") or "postgres", autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def _migrated_template(url: str) -> str:
    """A migrated database to copy the bench database from (`CREATE DATABASE ... TEMPLATE` takes a second;
    migrating takes far longer on a busy machine). Rebuilt whenever a migration file changes: its comment
    holds a digest of them all. It is kept between runs, named `lineage_bench_payouts_template`."""
    digest = hashlib.sha256()
    for path in sorted(BASE_DIR.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(BASE_DIR)).encode() + b"\0" + path.read_bytes())
    template = f"{BENCH_DB}_template"
    found = _admin(url, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (template,))
    if found and found[0] == digest.hexdigest():
        return template
    _admin(url, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
    _admin(url, f"CREATE DATABASE {template}")
    env = {**os.environ, "DATABASE_URL": _bench_url(url, template), "DJANGO_SETTINGS_MODULE": "lineage.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    _admin(url, f"COMMENT ON DATABASE {template} IS '{digest.hexdigest()}'")
    return template


def _django(url: str):
    if os.environ.get("DATABASE_URL") == url and "django.apps" in sys.modules:
        from django.apps import apps

        if apps.ready:
            return
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "lineage.settings"
    # As in production: DEBUG would log every query (and the log would fill up over a long run).
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 40)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


def _init(url: str) -> None:
    """Pool initializer: Django set up and the rewards services imported (web3 is slow to load) before
    any clock starts."""
    _django(url)
    from rewards import services  # noqa: F401


def _prepare(url: str, workers: int) -> dict:
    _django(url)
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from rewards.services import credit_grant

    User = get_user_model()
    make = lambda name: User.objects.create(username=name, email=f"{name}@bench.local")  # noqa: E731
    payers = [[make(f"payer{w}-{i}") for i in range(PAYERS_PER_WORKER)] for w in range(workers)]
    owner = make("owner")
    contributors = [make(f"contributor{i}") for i in range(CONTRIBUTORS)]
    for payer in (p for group in payers for p in group):
        credit_grant(actor=None, user=payer, amount=10**9 * OPEN, reason="bench")
    return {"payers": [[p.pk for p in group] for group in payers], "owner": owner.pk,
            "contributors": [c.pk for c in contributors], "batch_size": settings.REWARDS_SETTLE_BATCH}


def _record(args) -> tuple[float, float, int]:
    """One 'web process': record `count` fees, one transaction per inference."""
    url, payer_ids, owner_id, contributor_ids, count, tag, start_at = args
    _django(url)
    from django.contrib.auth import get_user_model

    from rewards.services import fee_record

    User = get_user_model()
    payers, owner = list(User.objects.filter(pk__in=payer_ids)), User.objects.get(pk=owner_id)
    shares = {cid: 1_000_000 // len(contributor_ids) for cid in contributor_ids}
    shares[contributor_ids[0]] += 1_000_000 - sum(shares.values())
    rows = {cid: [f"row-{cid}-1", f"row-{cid}-2"] for cid in contributor_ids}
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    for i in range(count):
        fee_record(inference_id=f"{tag}-{i}", payer=payers[i % len(payers)], model_owner=owner, fee=OPEN // 1000 + i,
                   contributor_shares=shares, model_version_hash="b" * 64, receipt_id=f"r-{tag}-{i}",
                   contributor_rows=rows, settle_soon=False)
    return started, time.time(), count


def _backend_cpu_s() -> float | None:
    """CPU seconds this connection's PostgreSQL backend has used (None when the server is not local)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(args) -> tuple[float, float, int, float | None]:
    """One settling worker: batches until it has booked `quota` fees, the backlog is empty, or (end to
    end) the backlog stayed empty for `stop_when_idle_after` seconds. Also returns the CPU seconds it and
    its database backend used."""
    url, quota, stop_when_idle_after, start_at = args
    _django(url)
    from django.conf import settings

    from rewards.services import fee_settle_batch

    backend_before = _backend_cpu_s()  # also connects before the clock starts
    time.sleep(max(0.0, start_at - time.time()))
    started, cpu_before, settled, idle_since = time.time(), time.process_time(), 0, None
    finished = started
    while quota is None or settled < quota:
        size = settings.REWARDS_SETTLE_BATCH if quota is None else min(settings.REWARDS_SETTLE_BATCH, quota - settled)
        batch = fee_settle_batch(limit=size).settled
        settled += batch
        if batch:
            finished, idle_since = time.time(), None
        elif stop_when_idle_after is None:
            break
        else:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > stop_when_idle_after:
                break
            time.sleep(0.05)
    backend_after = _backend_cpu_s()
    cpu = time.process_time() - cpu_before
    if backend_before is not None and backend_after is not None:
        cpu += backend_after - backend_before
    else:
        cpu = None
    return started, finished, settled, cpu


def _count_queries(url: str) -> dict:
    _django(url)
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rewards.ledger import ledger_check
    from rewards.models import PendingFee
    from rewards.services import fee_settle_batch

    size = settings.REWARDS_SETTLE_BATCH
    assert PendingFee.objects.count() >= size, "the backlog is smaller than one batch"
    with CaptureQueriesContext(connection) as queries:
        batch = fee_settle_batch(limit=size)
    check = ledger_check()
    return {"batch": batch.settled, "queries": len(queries), "ledger_ok": check.ok, "problems": check.problems[:5]}


def _rate(runs) -> float:
    return sum(run[2] for run in runs) / (max(run[1] for run in runs) - min(run[0] for run in runs))


def settled_per_s(*, quick: bool, database_url: str | None = None, workers: int = 4) -> dict:
    url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_URL
    if not url.startswith(("postgres://", "postgresql://")):
        url = DEFAULT_URL
    bench_url = _bench_url(url)
    context = multiprocessing.get_context("spawn")
    # One pool for everything (workers recorders + 1 settler run at once end to end); its processes load
    # Django while the database is prepared, and keep their connection from task to task.
    pool = context.Pool(workers + 1, initializer=_init, initargs=(bench_url,))
    try:
        template = _migrated_template(url)
        _admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        _admin(url, f"CREATE DATABASE {BENCH_DB} TEMPLATE {template}")
        cast = pool.apply(_prepare, (bench_url, workers))
        # One backlog, recorded through the real path: `quota` fees for each settling round, then one batch
        # for the query count. Rounds of 1, 2 (and 4) settlers side by side; then (full mode) recorders and
        # a settler at once.
        rounds, quota = ((1, 2), 500) if quick else ((1, 2, 4), 3_000)
        per_worker = -(-(quota * len(rounds) + cast["batch_size"]) // workers)

        def together(function, jobs):  # each job in its own process, all starting at the same moment
            start_at = time.time() + 1.5
            return pool.map(function, [(*job, start_at) for job in jobs], chunksize=1)

        recorded = _rate(together(_record, [(bench_url, cast["payers"][w], cast["owner"], cast["contributors"],
                                             per_worker, f"b{w}") for w in range(workers)]))
        settles, cpu = {}, {}
        for settlers in rounds:
            runs = together(_settle, [(bench_url, quota // settlers, None)] * settlers)
            settles[settlers] = _rate(runs)
            if all(run[3] is not None for run in runs):
                cpu[settlers] = sum(run[2] for run in runs) / sum(run[3] for run in runs)
        queries = pool.apply(_count_queries, (bench_url,))  # books one more batch, then checks the books
        figures = {
            "settled_per_s": round(max(settles.values())),
            **{f"settled_per_s_{n}settler": round(v) for n, v in settles.items()},
            **({"settled_per_cpu_s": round(max(cpu.values()))} if cpu else {}),
            "recorded_per_s": round(recorded),
        }
        if not quick:
            start_at = time.time() + 1.5
            settler = pool.apply_async(_settle, ((bench_url, None, 2.0, start_at),))
            runs = pool.map(_record, [(bench_url, cast["payers"][w], cast["owner"], cast["contributors"],
                                       quota // workers, f"e{w}", start_at) for w in range(workers)], chunksize=1)
            _, last_booked, booked, _ = settler.get()
            figures["end_to_end_per_s"] = round(booked / (last_booked - min(run[0] for run in runs)))
        return {
            **figures,
            "settle_batch": queries["batch"],
            "queries_per_batch": queries["queries"],
            "queries_per_settlement": round(queries["queries"] / max(1, queries["batch"]), 4),
            "ledger_ok": queries["ledger_ok"],
        }
    finally:
        pool.terminate()
        pool.join()
        _admin(url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
