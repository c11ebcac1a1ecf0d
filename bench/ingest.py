"""Datanets ingestion benchmark: end-to-end rows/s and near-duplicate lookup ms/row, on PostgreSQL.

What runs is the production path, not a model of it:

1. a throwaway database `lineage_bench` is created on the server named by `DATABASE_URL` (default
   `postgres://postgres@127.0.0.1:5432/test`) and migrated with Django's `migrate`;
2. realistic JSON Lines rows (templated product/support sentences over four labels, with ~2 % exact
   duplicates and ~3 % near duplicates of earlier rows) are contributed as a file through
   `services.contribution_create_from_file` (hashing, content-addressed storage, the contribution row)
   and validated by the real Celery task body `contribution_validate_task` (parse, validate, exact and
   MinHash near de-duplication against the Datanet and within the upload, bulk storage of rows and row
   errors, index update) — timed together as rows/s;
3. the Datanet's near-duplicate index is loaded the way the service loads it
   (`services.near_dup_index_load`, the engine's `NearDupIndex`) and queried with fresh texts, half of
   them edits of stored rows: ms/row for single queries (what screening does per row) and batched.

Usage: `python bench/ingest.py [--quick] [--rows N] [--json] [--keep] [--database-name NAME]`. `--quick`
is 10,000 rows; the default is 100,000. `--json` prints one JSON object as the last line. The throwaway
database is dropped and re-created: give each concurrent run its own `--database-name`. Targets:
>= 5,000 rows/s end to end, < 1 ms/row near-duplicate lookup. Figures are whatever this machine gives;
nothing is asserted. `rows_per_cpu_s` (this process's CPU time) is the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
# The throwaway database's name; --database-name (or INGEST_BENCH_DB) picks another so that two runs
# on one server do not drop each other's database.
BENCH_DB = os.environ.get("INGEST_BENCH_DB", "lineage_bench")
TARGET_ROWS_PER_S = 5000
TARGET_NEAR_DUP_MS = 1.0

LABELS = ["praise", "complaint", "question", "suggestion"]
PRODUCTS = [
    "kettle", "desk lamp", "mechanical keyboard", "hiking backpack", "blender", "phone charger", "umbrella",
    "monitor", "coffee grinder", "air fryer", "rice cooker", "office chair", "bike light", "sleeping bag",
    "water bottle", "headphones", "electric toothbrush", "standing desk", "smart plug", "robot vacuum",
]
ADJECTIVES = [
    "sturdy", "flimsy", "quiet", "noisy", "bright", "dim", "fast", "slow", "cheap", "overpriced", "compact",
    "bulky", "reliable", "fragile", "elegant", "clunky", "efficient", "wasteful", "comfortable", "awkward",
]
TEMPLATES = {
    "praise": [
        "The {adj} {product} arrived {days} days early and has worked perfectly for {weeks} weeks now.",
        "I love how {adj} this {product} is; after {weeks} weeks I would buy it again without a second thought.",
        "Five stars: the {product} is {adj}, easy to clean and the battery lasts about {hours} hours.",
    ],
    "complaint": [
        "My {product} stopped working after {weeks} weeks and support took {days} days to answer my email.",
        "The {product} feels {adj} and the lid cracked on day {days}; I expected better for {price} euros.",
        "Returned the {product}: far too {adj}, and the replacement part cost another {price} euros.",
    ],
    "question": [
        "Does the {product} come with a spare filter, and is the {adj} version compatible with model {model}?",
        "How long should the {product} charge before first use? The manual says {hours} hours but the box says {days}.",
        "Can I use the {product} abroad at 110 volts, or do I need the {adj} adapter sold separately?",
    ],
    "suggestion": [
        "Please make a {adj} version of the {product} with a longer cable, maybe {hours} metres instead of two.",
        "It would help if the {product} showed the remaining time; a {adj} display would be worth {price} euros more.",
        "Consider shipping the {product} in less packaging; mine came in {days} boxes for one {adj} item.",
    ],
}


def log(message: str) -> None:
    print(message, flush=True)


# --- Data --------------------------------------------------------------------------------------------


def _sentence(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(LABELS)
    template = rng.choice(TEMPLATES[label])
    text = template.format(
        adj=rng.choice(ADJECTIVES), product=rng.choice(PRODUCTS), days=rng.randint(2, 40),
        weeks=rng.randint(2, 90), hours=rng.randint(2, 48), price=rng.randint(15, 900),
        model=f"{rng.choice('ABCDEFGHJK')}{rng.randint(100, 9999)}",
    )
    # A customer reference makes each row distinct, as real tickets are.
    return f"{text} (ticket {rng.randint(10**7, 10**8 - 1)}, order {rng.randint(10**5, 10**6 - 1)})", label


def _near_edit(text: str, rng: random.Random) -> str:
    """A small edit of a row: one word swapped or a short phrase appended (Jaccard ~0.8-0.95)."""
    words = text.split()
    choice = rng.random()
    if choice < 0.5:
        i = rng.randrange(len(words))
        words[i] = rng.choice(["really", "truly", "very", "quite", "honestly"])
        return " ".join(words)
    if choice < 0.8:
        return text + rng.choice([" Thanks!", " Cheers.", " Regards.", " :)"])
    return text.replace(",", "", 1)


def generate_rows(n: int, seed: int = 7) -> tuple[list[dict], dict]:
    """n rows; ~2 % exact copies and ~3 % near copies of earlier rows (positions are random)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    kinds = {"unique": 0, "exact": 0, "near": 0}
    for _ in range(n):
        r = rng.random()
        if rows and r < 0.02:
            rows.append(dict(rng.choice(rows)))
            kinds["exact"] += 1
        elif rows and r < 0.05:
            source = rng.choice(rows)
            rows.append({"text": _near_edit(source["text"], rng), "label": source["label"], "source": "web"})
            kinds["near"] += 1
        else:
            text, label = _sentence(rng)
            rows.append({"text": text, "label": label, "source": rng.choice(["web", "email", "chat"])})
            kinds["unique"] += 1
    return rows, kinds


# --- Database ----------------------------------------------------------------------------------------


def bench_database_url(base_url: str) -> tuple[str, str]:
    """(url of the throwaway bench database, url of the server's maintenance database)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(f"DATABASE_URL must be PostgreSQL for this benchmark, not {parts.scheme!r}.")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}")), urlunsplit(parts._replace(path="/postgres"))


def recreate_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def drop_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def backend_cpu_s(pid: int) -> float | None:
    """CPU seconds used so far by a PostgreSQL backend process, when the server runs on this machine."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0], utime/stime [11]/[12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup_django(bench_url: str, var_dir: str) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ["LINEAGE_VAR_DIR"] = var_dir  # media, the near-dup cache and the Celery folders: all throwaway
    os.environ["MEDIA_ROOT"] = str(Path(var_dir) / "media")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"  # the task body is run below, timed, in this process
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "lineage.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- Stages ------------------------------------------------------------------------------------------


def run(args) -> dict:
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    bench_url, admin_url = bench_database_url(base_url)
    n = args.rows or (10_000 if args.quick else 100_000)
    figures: dict = {"rows": n, "database": f"postgresql/{BENCH_DB}", "python": platform.python_version(),
                     "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}

    with tempfile.TemporaryDirectory(prefix="lineage-bench-") as var_dir:
        started = time.perf_counter()
        recreate_database(admin_url)
        setup_django(bench_url, var_dir)
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        figures["migrate_s"] = round(time.perf_counter() - started, 2)
        log(f"database {BENCH_DB} created and migrated in {figures['migrate_s']:.1f} s")
        try:
            figures.update(_ingest_and_query(n, args))
        finally:
            from django.db import connections

            connections.close_all()
            if not args.keep:
                drop_database(admin_url)
    return figures


def _ingest_and_query(n: int, args) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile

    from datanets import services
    from datanets.models import Contribution, ContributionSource, Record
    from datanets.tasks import contribution_validate_task

    out: dict = {}
    t = time.perf_counter()
    rows, kinds = generate_rows(n, seed=args.seed)
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    out["generate_s"] = round(time.perf_counter() - t, 2)
    out["upload_bytes"] = len(payload)
    log(f"generated {n:,} JSONL rows ({len(payload) / 1e6:.1f} MB): {kinds['unique']:,} distinct, "
        f"{kinds['exact']:,} exact copies, {kinds['near']:,} near copies")

    owner = get_user_model().objects.create_user(username="bench", email="bench@example.org", password=None)
    datanet = services.datanet_create(
        owner=owner, name="Bench customer feedback", task_type="text-classification", label_set=LABELS,
        metadata_columns=["source"], max_rows_per_contribution=max(n, 100_000),
    )

    # End to end: upload (hash, content-addressed storage, contribution row) + the validation task body.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    db_cpu0 = backend_cpu_s(backend_pid)
    t0, cpu0 = time.perf_counter(), time.process_time()
    contribution = services.contribution_create_from_file(
        datanet=datanet, contributor=owner, uploaded_file=ContentFile(payload, name="feedback.jsonl"),
        source=ContributionSource.API_FILE,
    )
    t1 = time.perf_counter()
    contribution_validate_task(contribution.pk)
    t2, cpu2 = time.perf_counter(), time.process_time()
    db_cpu2 = backend_cpu_s(backend_pid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        same_backend = cursor.fetchone()[0] == backend_pid
    db_cpu = db_cpu2 - db_cpu0 if same_backend and db_cpu0 is not None and db_cpu2 is not None else None
    contribution = Contribution.objects.get(pk=contribution.pk)
    stored = Record.objects.filter(datanet=datanet).count()
    out.update(
        store_s=round(t1 - t0, 3),
        validate_s=round(t2 - t1, 3),
        end_to_end_s=round(t2 - t0, 3),
        rows_per_s=round(n / (t2 - t0), 1),
        # CPU seconds of this process only (PostgreSQL's own work is not counted): on a shared machine
        # this shows what the code costs apart from waiting for a CPU.
        ingest_cpu_s=round(cpu2 - cpu0, 3),
        rows_per_cpu_s=round(n / max(cpu2 - cpu0, 1e-9), 1),
        # The database's share, when the server is local: the CPU of this session's backend process
        # (COPY, index updates, foreign-key checks at commit; not the server's background writers).
        db_backend_cpu_s=None if db_cpu is None else round(db_cpu, 3),
        rows_per_total_cpu_s=None if db_cpu is None else round(n / max(cpu2 - cpu0 + db_cpu, 1e-9), 1),
        state=contribution.state,
        rows_total=contribution.rows_total,
        rows_accepted=contribution.rows_accepted,
        rows_duplicate=contribution.rows_duplicate,
        rows_near_duplicate=contribution.rows_near_duplicate,
        rows_rejected=contribution.rows_rejected,
        rows_stored=stored,
    )
    log(f"ingest: {n:,} rows end to end in {out['end_to_end_s']:.2f} s = {out['rows_per_s']:,.0f} rows/s "
        f"(store {out['store_s']:.2f} s, validate {out['validate_s']:.2f} s; this process used "
        f"{out['ingest_cpu_s']:.1f} CPU s = {out['rows_per_cpu_s']:,.0f} rows per CPU second"
        + (f"; with PostgreSQL's {db_cpu:.1f} CPU s, {out['rows_per_total_cpu_s']:,.0f} rows per CPU second"
           if db_cpu is not None else "")
        + f") -> state {contribution.state}; "
        f"accepted {contribution.rows_accepted:,}, exact duplicates {contribution.rows_duplicate:,}, "
        f"near duplicates flagged {contribution.rows_near_duplicate:,}, rejected {contribution.rows_rejected:,}")

    # Near-duplicate lookups against the Datanet's index, loaded as the service loads it.
    t = time.perf_counter()
    index = services.near_dup_index_load(datanet=datanet)
    out["index_rows"] = len(index)
    out["index_load_ms"] = round((time.perf_counter() - t) * 1000, 1)
    rng = random.Random(args.seed + 1)
    n_queries = 1000 if args.quick else 2000
    stored_texts = list(Record.objects.filter(datanet=datanet).order_by("?").values_list("fields", flat=True)[: n_queries // 2])
    near_queries = [_near_edit(datanet.schema.comparison_text(f), rng) for f in stored_texts]
    fresh_queries = [_sentence(rng)[0] for _ in range(n_queries - len(near_queries))]
    queries = near_queries + fresh_queries
    rng.shuffle(queries)
    index.query(queries[0])  # first call pays lazy numpy set-up
    t = time.perf_counter()
    found = sum(1 for text in queries if index.query(text) is not None)
    single_ms = (time.perf_counter() - t) * 1000 / len(queries)
    t = time.perf_counter()
    batched = index.query_many(queries)
    batched_ms = (time.perf_counter() - t) * 1000 / len(queries)
    near_hits = sum(1 for text in near_queries if index.query(text) is not None)
    out.update(
        near_dup_queries=len(queries),
        near_dup_ms_per_row=round(single_ms, 4),
        near_dup_batched_ms_per_row=round(batched_ms, 4),
        near_dup_recall_on_edits=round(near_hits / len(near_queries), 3) if near_queries else None,
        near_dup_matches=found,
        near_dup_batched_matches=sum(1 for m in batched if m is not None),
    )
    log(f"near-dup: index of {len(index):,} rows loaded in {out['index_load_ms']:.0f} ms; {len(queries):,} lookups "
        f"(half are edits of stored rows): {single_ms:.3f} ms/row one at a time, {batched_ms:.3f} ms/row batched; "
        f"edits found {out['near_dup_recall_on_edits']:.1%}")
    return out


def main(argv=None) -> int:
    global BENCH_DB
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows (default 100,000)")
    parser.add_argument("--rows", type=int, default=0, help="override the number of rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database afterwards")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-name", default="", help=f"name of the throwaway database (default {BENCH_DB})")
    args = parser.parse_args(argv)
    BENCH_DB = args.database_name or BENCH_DB
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", BENCH_DB):  # it is written into DROP/CREATE DATABASE
        parser.error("the database name takes lower-case letters, digits and underscores")
    started = time.perf_counter()
    figures = run(args)
    figures["total_s"] = round(time.perf_counter() - started, 2)
    figures["meets_rows_per_s_target"] = figures["rows_per_s"] >= TARGET_ROWS_PER_S
    figures["meets_near_dup_target"] = figures["near_dup_ms_per_row"] < TARGET_NEAR_DUP_MS
    log(f"targets: >= {TARGET_ROWS_PER_S:,} rows/s end to end: "
        f"{'met' if figures['meets_rows_per_s_target'] else 'NOT met'} ({figures['rows_per_s']:,.0f}); "
        f"< {TARGET_NEAR_DUP_MS} ms/row near-dup: {'met' if figures['meets_near_dup_target'] else 'NOT met'} "
        f"({figures['near_dup_ms_per_row']:.3f}); load average {figures['load_avg_1m']} on {figures['cpus']} CPUs; "
        f"total {figures['total_s']:.0f} s")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
