"""Load test of the production web command: streaming chat clients and browsing users at once.

What it does, in order:
1. (re)creates its own PostgreSQL database (`--database`, default `lineage_load`) on DATABASE_HOST
   (default postgres@127.0.0.1:5432), migrates it and seeds it (bench/load/seed.py: curators, contributors,
   API users and one API user per streaming client, each with its own key and credit, a published Datanet, a
   deployed paid MiniLM classifier with its index, a deployed paid tiny Llama instruction model with its index);
2. starts the web tier with the Procfile's `web:` command line as it is (`gunicorn lineage.wsgi`, configured by
   gunicorn.conf.py: gthread, WEB_CONCURRENCY workers x WEB_THREADS threads; only the bind address is moved
   from 0.0.0.0 to 127.0.0.1), `manage.py serve_models` on a free port, one Celery worker (queues default and
   chain) and one attribution worker (queue attribution: the queued receipts and fees), with Redis as broker,
   cache and throttle store (database `--redis-db` and the next one);
3. times each of the three public pages 10 times, one after another, with nothing else running (idle);
4. runs locust headless (bench/load/locustfile.py) for `--duration` seconds: `--clients` streaming clients
   (spawned first, at once), each holding one streamed chat completion open and opening the next as soon as
   one ends, and `--users` browsing users (contributors, curators, API users) beside them; every gunicorn
   worker's RSS and thread count is sampled every 0.5 s;
5. prints the streams' time to first byte, first token and completion (p50/p95/p99), how many streams were
   open at once, the page views' latency under that load next to idle, every endpoint, web RSS and the error
   count (`--json`: one JSON object), and stops everything it started.

`--quick` = 32 clients and 10 browsing users for 45 s. The issue's full run is the default: 32 clients and 50
users for 600 s (run it on a quiet machine). Nothing is asserted: the figures are printed, and the exit status
is 1 when any request failed.

Run: ``.venv/bin/python bench/load.py [--quick] [--json] [--clients N] [--users N] [--duration S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent / "load"))
import report  # noqa: E402 - bench/load/report.py

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PAGES = ["/datanets/", "/datanets/{slug}/", "/datanets/{slug}/rows/"]


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
    for command in (["dropdb", *base, "--if-exists", "--force", ARGS.database], ["createdb", *base, ARGS.database]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"{command[0]} failed ({result.stderr.strip()}): the load test needs a PostgreSQL server "
                             f"at {ARGS.pg_user}@{ARGS.pg_host}:{ARGS.pg_port} (--pg-host, --pg-port, --pg-user)")


def flush_redis(db: int) -> None:
    host, port = ARGS.redis.rsplit(":", 1)
    result = subprocess.run(["redis-cli", "-h", host, "-p", port, "-n", str(db), "flushdb"], capture_output=True,
                            text=True)
    if result.returncode or "OK" not in result.stdout:
        raise SystemExit(f"Redis at {ARGS.redis} (database {db}) did not answer ({(result.stdout + result.stderr).strip()}):"
                         " start it (`redis-server --daemonize yes`) or pass --redis host:port")


def web_command() -> list[str]:
    """The Procfile's `web:` line, run by bash as a Procfile runner would (PORT from the environment), bound to
    loopback."""
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    if len(lines) != 1:
        raise SystemExit("the Procfile has no single `web:` line to run")
    return ["bash", "-c", "exec " + lines[0].removeprefix("web:").strip().replace("0.0.0.0", "127.0.0.1")]


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


def wait_answer(host: str, key: str, body: dict, what: str) -> None:
    """Until one answer goes through end to end (the model server has loaded the model's adapter)."""
    request = Request(f"{host}/v1/chat/completions", method="POST", data=json.dumps(body).encode(),
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    deadline = time.monotonic() + 300
    while True:
        try:
            with urlopen(request, timeout=60) as response:
                if response.status == 200 and (not body.get("stream") or b"data: [DONE]" in response.read()):
                    return
        except (URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} never answered; see {ARGS.workdir}/model-server.log")
        time.sleep(1)


def time_pages(host: str, seed: dict, rounds: int) -> dict[str, list[float]]:
    """Each public page `rounds` times, one request at a time (ms)."""
    timings = {}
    for page in PAGES:
        path = page.format(slug=seed["datanet"])
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            with urlopen(f"{host}{path}", timeout=60) as response:
                response.read()
            samples.append((time.perf_counter() - started) * 1e3)
        timings[page] = samples
    return timings


class WebSampler(threading.Thread):
    """Every gunicorn worker's (the master's children) RSS and thread count every 0.5 s: peaks per worker."""

    def __init__(self, master_pid: int) -> None:
        super().__init__(daemon=True)
        self.master = psutil.Process(master_pid)
        self.rss: dict[int, int] = {}
        self.threads: dict[int, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for worker in self.master.children():
                try:
                    rss, threads = worker.memory_info().rss, worker.num_threads()
                except psutil.NoSuchProcess:
                    continue
                self.rss[worker.pid] = max(rss, self.rss.get(worker.pid, 0))
                self.threads[worker.pid] = max(threads, self.threads.get(worker.pid, 0))


def gunicorn_config(env: dict) -> dict:
    """The settings the web command runs with (`gunicorn --print-config`, which reads gunicorn.conf.py)."""
    printed = subprocess.run([str(Path(PYTHON).parent / "gunicorn"), "--print-config", "lineage.wsgi"], cwd=ROOT,
                             env=env, capture_output=True, text=True).stdout
    values = {name.strip(): value.strip() for name, _, value in (line.partition(" = ") for line in printed.splitlines())}
    return {key: values.get(key) or "?" for key in ("worker_class", "workers", "threads", "timeout")}


def main() -> int:
    workdir = Path(ARGS.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_port, web_port = free_port(), free_port()
    env = {
        **os.environ, "DATABASE_URL": database_url(ARGS.database), "CONN_MAX_AGE": "60", "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "load-test-only-" + "x" * 40), "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "LINEAGE_VAR_DIR": str(workdir / "var"),
        "CELERY_BROKER_URL": f"redis://{ARGS.redis}/{ARGS.redis_db}",
        "CELERY_RESULT_BACKEND": f"redis://{ARGS.redis}/{ARGS.redis_db}",
        "CACHE_URL": f"redis://{ARGS.redis}/{ARGS.redis_db + 1}", "CELERY_TASK_ALWAYS_EAGER": "0",
        "INFERENCE_SERVER_URL": f"http://127.0.0.1:{model_port}", "INFERENCE_THREADS": "1",
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the Procfile's `gunicorn`
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for name, value in (("WEB_CONCURRENCY", ARGS.workers), ("WEB_THREADS", ARGS.threads)):
        if value is not None:
            env[name] = str(value)
    web = gunicorn_config(env)
    log(f"load test: {ARGS.clients} streaming clients and {ARGS.users} browsing users for {ARGS.duration} s; web: "
        f"{web['worker_class']}, {web['workers']} workers x {web['threads']} threads; work directory {workdir}")
    log("preparing:")
    flush_redis(ARGS.redis_db)
    flush_redis(ARGS.redis_db + 1)
    recreate_database(env)
    run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env, "migrate")
    # DEBUG=0 serves hashed static names from the manifest that collectstatic writes (as a deployment does).
    run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], env, "collectstatic")
    seed_file = workdir / "seed.json"
    run([PYTHON, "bench/load/seed.py", "--out", str(seed_file), "--epochs", str(ARGS.epochs), "--stream-users",
         str(max(ARGS.clients, 1)), "--model-dir", str(workdir / "tiny-llama")],
        {**env, "CELERY_TASK_ALWAYS_EAGER": "1"}, "seed (users, Datanets, two fine-tunes and their indexes)")
    seed = json.loads(seed_file.read_text())

    processes, sampler = [], None
    try:
        command = web_command()
        log(f"  web command: PORT={web_port} {command[-1].removeprefix('exec ')}")
        processes.append(start(command, {**env, "PORT": str(web_port)}, "gunicorn"))
        processes.append(start([PYTHON, "manage.py", "serve_models", "--port", str(model_port), "--poll", "5"], env,
                               "model-server"))
        worker = [PYTHON, "-m", "celery", "-A", "lineage", "worker", "--concurrency", "1", "--without-heartbeat",
                  "--without-gossip", "--without-mingle", "-l", "WARNING"]
        processes.append(start([*worker, "-Q", "default,chain", "-n", "default@%h"], env, "worker"))
        processes.append(start([*worker, "-Q", "attribution", "-n", "attribution@%h"], env, "attribution-worker"))
        host = f"http://127.0.0.1:{web_port}"
        wait_http(f"{host}/healthz", 180, "gunicorn", procs=processes)
        wait_answer(host, seed["api_users"][0], {"model": seed["model"], "messages": [
            {"role": "user", "content": "hello"}]}, "the classifier")
        wait_answer(host, seed["stream_users"][0], {"model": seed["stream_model"], "stream": True, "max_tokens": 4,
                                                    "messages": [{"role": "user", "content": "hello"}]},
                    "the streamed model")
        time_pages(host, seed, 2)  # warm: each worker's first render compiles templates
        idle = time_pages(host, seed, 10)
        log(f"running locust against {host} ...")
        sampler = WebSampler(processes[0].pid)
        sampler.start()
        results_file = workdir / "results.json"
        classes = (["StreamingChat"] if ARGS.clients else []) + (["Contributor", "Curator", "ApiUser"] if ARGS.users
                                                                 else [])
        locust = subprocess.run(
            [PYTHON, "-m", "locust", "-f", str(ROOT / "bench/load/locustfile.py"), "--headless", "--host", host,
             "--users", str(ARGS.clients + ARGS.users), "--spawn-rate", str(ARGS.spawn_rate),
             "--run-time", f"{ARGS.duration}s", "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "30",
             *classes],
            cwd=ROOT, env={**env, "LINEAGE_LOAD_SEED": str(seed_file), "LINEAGE_LOAD_STREAMS": str(ARGS.clients),
                           "LINEAGE_LOAD_STREAM_TOKENS": str(ARGS.max_tokens),
                           "LINEAGE_LOAD_RESULTS": str(results_file)},
            capture_output=True, text=True)
        sampler.stopped.set()
        (workdir / "locust.log").write_text(locust.stdout + locust.stderr)
        if not results_file.exists():
            raise SystemExit(f"locust wrote no results (see {workdir}/locust.log):\n{locust.stderr[-3000:]}")
        results = json.loads(results_file.read_text())
    finally:
        if sampler is not None:
            sampler.stopped.set()
        stop(processes)

    booted = (workdir / "gunicorn.log").read_text(errors="replace").count("Booting worker")
    result = report.build(args=ARGS, web=web, results=results, idle=idle, rss=sampler.rss, threads=sampler.threads,
                          workers_booted=booted)
    if ARGS.json:
        print(json.dumps(result, indent=1))
    else:
        report.show(result, log)
    if not ARGS.keep:
        shutil.rmtree(workdir / "var", ignore_errors=True)
    return 1 if result["errors"] else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="streaming chat clients, each with a stream open")
    parser.add_argument("--users", type=int, default=50, help="browsing users (contributors, curators, API users)")
    parser.add_argument("--duration", type=int, default=600, help="seconds of load")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens asked for per stream")
    parser.add_argument("--spawn-rate", type=float, default=None,
                        help="users started per second (default: --clients, so the streams open within a second)")
    parser.add_argument("--quick", action="store_true", help="32 clients and 10 browsing users for 45 s")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workers", type=int, default=None,
                        help="WEB_CONCURRENCY for the web command (default: unset, gunicorn.conf.py's default)")
    parser.add_argument("--threads", type=int, default=None,
                        help="WEB_THREADS for the web command (default: unset, gunicorn.conf.py's default)")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs of the seeded classifier")
    parser.add_argument("--database", default="lineage_load", help="dropped and re-created at each run")
    parser.add_argument("--pg-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--pg-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port")
    parser.add_argument("--redis-db", type=int, default=14,
                        help="broker database (the cache uses the next one; the tests use 10, 11 and 13)")
    parser.add_argument("--workdir", default=None, help="logs, seed file and locust CSVs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the media directory of the run")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.users, args.duration = 32, 10, 45
    for name in ("clients", "users"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be 0 or more")
    if args.clients + args.users == 0:
        parser.error("nothing to run: give --clients or --users (or both) a positive number")
    for name, smallest in (("duration", 1), ("max_tokens", 1), ("epochs", 1), ("workers", 1), ("threads", 1)):
        value = getattr(args, name)
        if value is not None and value < smallest:
            parser.error(f"--{name.replace('_', '-')} must be at least {smallest}")
    if ":" not in args.redis:
        parser.error(f"--redis must be host:port, not {args.redis!r}")
    args.spawn_rate = args.spawn_rate or float(max(args.clients, 5))
    if args.spawn_rate <= 0:
        parser.error("--spawn-rate must be positive")
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="lineage-load-")
    return args


if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(main())
