"""Load test: locust against gunicorn + PostgreSQL + Redis, with the model server and a Celery worker.

What it does, in order:
1. (re)creates its own PostgreSQL database (`--database`, default `lineage_load`) on DATABASE_HOST
   (default postgres@127.0.0.1:5432), migrates it and seeds it (bench/load/seed.py: curators, contributors,
   API users with keys and credit, a published Datanet, a deployed paid MiniLM classifier with its index);
2. starts gunicorn (`--workers`, gthread, persistent connections), `manage.py serve_models` on a free port
   and one Celery worker (queues default and chain: upload validation, fee booking), with Redis as broker,
   cache and throttle store (database `--redis-db` and the next one);
3. runs locust headless (bench/load/locustfile.py) with `--users` users for `--duration` seconds;
4. prints requests/s and p50/p95/p99 per endpoint and the error count (`--json`: one JSON object), and
   stops everything it started.

`--quick` = 20 users for 60 s. The issue's full run is `--users 50 --duration 600` (run it on a quiet
machine). Nothing is asserted: the figures are printed, and the exit status is 1 when any request failed.

Run: ``.venv/bin/python bench/load.py [--quick] [--json] [--users N] [--duration S]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def log(message: str) -> None:
    print(message, file=sys.stderr if ARGS.json else sys.stdout, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, what: str, headers: dict | None = None, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{what}: a process exited early (status {proc.returncode}); see {ARGS.workdir}")
        try:
            with urlopen(Request(url, headers=headers or {}), timeout=5) as response:
                if response.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what} ({url})")


def run(command: list, env: dict, what: str) -> None:
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    log(f"  {what}: {time.monotonic() - started:.0f} s")


def database_url(name: str) -> str:
    return f"postgres://{ARGS.pg_user}@{ARGS.pg_host}:{ARGS.pg_port}/{name}"


def recreate_database(env: dict) -> None:
    base = ["-h", ARGS.pg_host, "-p", str(ARGS.pg_port), "-U", ARGS.pg_user]
    subprocess.run(["dropdb", *base, "--if-exists", "--force", ARGS.database], check=True, env=env)
    subprocess.run(["createdb", *base, ARGS.database], check=True, env=env)


def start(command: list, env: dict, name: str) -> subprocess.Popen:
    log_file = open(Path(ARGS.workdir) / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(processes: list) -> None:
    for proc in processes:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def read_stats(prefix: Path) -> tuple[list[dict], dict, list[dict]]:
    def num(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    endpoints, total = [], {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            entry = {
                "method": row["Type"], "endpoint": row["Name"], "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]), "rps": round(num(row["Requests/s"]) or 0, 2),
                "p50_ms": num(row["50%"]), "p95_ms": num(row["95%"]), "p99_ms": num(row["99%"]),
                "mean_ms": round(num(row["Average Response Time"]) or 0, 1),
            }
            if row["Name"] == "Aggregated":
                total = entry
            else:
                endpoints.append(entry)
    failures = []
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with open(failures_file, newline="") as fh:
            failures = [{"method": r["Method"], "endpoint": r["Name"], "error": r["Error"][:300],
                         "occurrences": int(r["Occurrences"])} for r in csv.DictReader(fh)]
    return endpoints, total, failures


def main() -> int:
    workdir = Path(ARGS.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    url = database_url(ARGS.database)
    model_port, web_port = free_port(), free_port()
    env = {
        **os.environ, "DATABASE_URL": url, "CONN_MAX_AGE": "60", "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "load-test-only-" + "x" * 40), "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "LINEAGE_VAR_DIR": str(workdir / "var"),
        "CELERY_BROKER_URL": f"redis://{ARGS.redis}/{ARGS.redis_db}",
        "CELERY_RESULT_BACKEND": f"redis://{ARGS.redis}/{ARGS.redis_db}",
        "CACHE_URL": f"redis://{ARGS.redis}/{ARGS.redis_db + 1}", "CELERY_TASK_ALWAYS_EAGER": "0",
        "INFERENCE_SERVER_URL": f"http://127.0.0.1:{model_port}", "INFERENCE_THREADS": "1",
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log(f"load test: {ARGS.users} users for {ARGS.duration} s; work directory {workdir}")
    log("preparing:")
    subprocess.run(["redis-cli", "-h", ARGS.redis.split(":")[0], "-p", ARGS.redis.split(":")[1], "-n",
                    str(ARGS.redis_db), "flushdb"], check=True, capture_output=True)
    subprocess.run(["redis-cli", "-h", ARGS.redis.split(":")[0], "-p", ARGS.redis.split(":")[1], "-n",
                    str(ARGS.redis_db + 1), "flushdb"], check=True, capture_output=True)
    recreate_database(env)
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
    # DEBUG=0 serves hashed static names from the manifest that collectstatic writes (as a deployment does).
    run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], env, "collectstatic")
    seed_file = workdir / "seed.json"
    run([PYTHON, "bench/load/seed.py", "--out", str(seed_file), "--epochs", str(ARGS.epochs)],
        {**env, "CELERY_TASK_ALWAYS_EAGER": "1"}, "seed (users, Datanet, fine-tune, index)")
    seed = json.loads(seed_file.read_text())

    processes = []
    try:
        processes.append(start([PYTHON, "-m", "gunicorn", "lineage.wsgi", "--bind", f"127.0.0.1:{web_port}",
                                "--workers", str(ARGS.workers), "--threads", str(ARGS.threads), "--worker-class",
                                "gthread", "--timeout", "120",
                                # Longer than any user's pause: a keep-alive connection the server closes just
                                # as a client reuses it is a failed request (a proxy in front does the same).
                                "--keep-alive", "30"], env, "gunicorn"))
        processes.append(start([PYTHON, "manage.py", "serve_models", "--port", str(model_port), "--poll", "5"], env,
                               "model-server"))
        processes.append(start([PYTHON, "-m", "celery", "-A", "lineage", "worker", "-Q", "default,chain",
                                "--concurrency", "1", "--without-heartbeat", "--without-gossip", "--without-mingle",
                                "-l", "WARNING"], env, "worker"))
        host = f"http://127.0.0.1:{web_port}"
        wait_http(f"{host}/healthz", 180, "gunicorn", procs=processes)
        # The model server has loaded the deployed adapter when one answer goes through end to end.
        answer = Request(f"{host}/v1/chat/completions", method="POST", headers={
            "Authorization": f"Bearer {seed['api_users'][0]}", "Content-Type": "application/json"},
            data=json.dumps({"model": seed["model"], "messages": [{"role": "user", "content": "hello"}]}).encode())
        deadline = time.monotonic() + 300
        while True:
            try:
                with urlopen(answer, timeout=60) as response:
                    if response.status == 200:
                        break
            except (URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the model server never answered; see {workdir}/model-server.log")
            time.sleep(1)
        log(f"running locust against {host} ...")
        prefix = workdir / "locust"
        locust = subprocess.run(
            [PYTHON, "-m", "locust", "-f", str(ROOT / "bench/load/locustfile.py"), "--headless", "--host", host,
             "--users", str(ARGS.users), "--spawn-rate", str(ARGS.spawn_rate), "--run-time", f"{ARGS.duration}s",
             "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "30"],
            cwd=ROOT, env={**env, "LINEAGE_LOAD_SEED": str(seed_file)}, capture_output=True, text=True)
        (workdir / "locust.log").write_text(locust.stdout + locust.stderr)
        if not Path(f"{prefix}_stats.csv").exists():
            raise SystemExit(f"locust produced no statistics:\n{locust.stderr[-3000:]}")
        endpoints, total, failures = read_stats(prefix)
    finally:
        stop(processes)

    report = {
        "users": ARGS.users, "duration_s": ARGS.duration, "workers": ARGS.workers, "threads": ARGS.threads,
        "requests": total.get("requests", 0), "errors": total.get("failures", 0), "rps": total.get("rps", 0),
        "p50_ms": total.get("p50_ms"), "p95_ms": total.get("p95_ms"), "p99_ms": total.get("p99_ms"),
        "endpoints": endpoints, "failures": failures, "machine_cpus": os.cpu_count(),
    }
    if ARGS.json:
        print(json.dumps(report, indent=1))
    else:
        log(f"\n{'endpoint':<62} {'req':>6} {'err':>4} {'req/s':>6} {'p50':>6} {'p95':>6} {'p99':>6}  (ms)")
        for e in sorted(endpoints, key=lambda e: -e["requests"]):
            log(f"{e['method'] + ' ' + e['endpoint']:<62.62} {e['requests']:>6} {e['failures']:>4} {e['rps']:>6.2f} "
                f"{e['p50_ms'] or 0:>6.0f} {e['p95_ms'] or 0:>6.0f} {e['p99_ms'] or 0:>6.0f}")
        log(f"{'all':<62} {report['requests']:>6} {report['errors']:>4} {report['rps']:>6.2f} "
            f"{report['p50_ms'] or 0:>6.0f} {report['p95_ms'] or 0:>6.0f} {report['p99_ms'] or 0:>6.0f}")
        for failure in failures:
            log(f"  failure x{failure['occurrences']}: {failure['method']} {failure['endpoint']}: {failure['error']}")
    if not ARGS.keep:
        shutil.rmtree(workdir / "var", ignore_errors=True)
    return 1 if report["errors"] else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=int, default=600, help="seconds of load")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="users started per second")
    parser.add_argument("--quick", action="store_true", help="20 users for 60 s")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs of the seeded model")
    parser.add_argument("--database", default="lineage_load", help="dropped and re-created at each run")
    parser.add_argument("--pg-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--pg-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port")
    parser.add_argument("--redis-db", type=int, default=10, help="broker database (the cache uses the next one)")
    parser.add_argument("--workdir", default=None, help="logs, seed file and locust CSVs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the media directory of the run")
    args = parser.parse_args()
    if args.quick:
        args.users, args.duration = 20, 60
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="lineage-load-")
    return args


if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(main())
