"""Machinery for the fault tests (tests/hardening/test_faults_*.py): real processes and real servers that
the tests break on purpose.

* `CeleryWorker`: a `celery -A lineage worker` process on this suite's own Redis database, killed with
  SIGKILL mid-task (the broker then redelivers the unacknowledged message after the visibility timeout).
* `ChainNode` + `FaultyRpcProxy`: the in-process py-evm chain served over JSON-RPC (the `chain_node`
  command's handler) behind an HTTP proxy that refuses, drops, stalls or holds chosen calls, or runs a
  real competing transaction just before one: faults at the transport, a real chain behind them.
* `PrivatePostgres`: a throw-away PostgreSQL cluster (initdb/pg_ctl) on a free port, restarted by tests;
  the shared server is never touched.
* `ModelServer`: the stdlib model server (`python -m inference.engine.server`) as a subprocess on a fixed
  port, so it can be killed and started again at the same address.
"""

from __future__ import annotations

import http.client
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
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from process_support import test_database_url

ROOT = Path(__file__).resolve().parents[2]
# This suite's own Redis database, emptied by each test: no other test's messages (the ModelFactory
# worker-kill test uses 14).
BROKER = "redis://127.0.0.1:6379/13"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, log: Path | None = None,
             interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail the test with the log's tail otherwise."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def database_url() -> str:
    """The test database as a DATABASE_URL, so worker processes use the very database the test sees."""
    return test_database_url()


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER).flushdb()


def send_task(task, *args, queue: str) -> None:
    """Publish one message for `task` to this suite's broker (not the configured one)."""
    from lineage.celery import app as celery_app

    celery_app.conf.task_always_eager = False  # the conftest turns it back on after the test
    with celery_app.connection_for_write(BROKER) as conn:
        task.apply_async(args=list(args), connection=conn, queue=queue)


# Redis redelivers an unacknowledged message once it is this old. A worker sweeps for such messages as
# soon as it starts polling, then only about every 100 s (kombu throttles the sweep), so a test starts
# the second worker after the kill and after this timeout: its first sweep takes the message at once.
VISIBILITY_TIMEOUT_S = 3


def worker_env(settings, tmp_path: Path, **extra: str) -> dict:
    env = {
        **os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "0", "CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT), "TRAINING_WORK_DIR": str(settings.TRAINING_WORK_DIR),
        "LINEAGE_VAR_DIR": str(tmp_path / "worker-var"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


class CeleryWorker:
    """One `celery worker --pool solo` process: the task runs in the very process that gets SIGKILL."""

    def __init__(self, env: dict, log: Path, queues: str) -> None:
        self.env, self.log, self.queues = env, log, queues
        self.process: subprocess.Popen | None = None

    def start(self) -> CeleryWorker:
        with open(self.log, "ab") as fh:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "lineage", "worker", "--pool", "solo", "-Q", self.queues,
                 "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
                cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
            )
        return self

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL

    @staticmethod
    def wait_until_redeliverable() -> None:
        """Sleep until the killed worker's unacknowledged message is visible to a new worker's first sweep."""
        time.sleep(VISIBILITY_TIMEOUT_S + 1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# --- Chain: a JSON-RPC node and a proxy that breaks chosen calls ---------------------------------------

class ChainNode:
    """A fresh in-process chain served over JSON-RPC on a free port (the `chain_node` command's handler)."""

    def __init__(self) -> None:
        from rewards.chain import ChainClient, InProcessChain
        from rewards.management.commands.chain_node import make_handler

        self.client = ChainClient.in_process(InProcessChain())
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.client))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Fault:
    """What the proxy does to the calls it matches.

    action: `refuse` (close the connection before the node sees the call), `drop_response` (the node
    executes it, the caller gets a closed connection), `stall` (the node executes it; the answer comes
    `seconds` late, past the caller's timeout), `hold` (the node executes it; the caller waits until
    `release` is set, then gets a closed connection), `null_result` (answers null without asking the
    node: a lagging node that has not seen the transaction), `rpc_error` (a JSON-RPC error answer), `before`
    (run `hook` — a real competing action on the chain — then forward normally).
    """

    action: str
    method: str
    match: Callable[[list], bool] = lambda params: True
    times: int = 1
    seconds: float = 0.0
    hook: Callable[[], None] | None = None
    message: str = "injected failure"
    hits: int = 0
    hit: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class FaultyRpcProxy:
    """An HTTP proxy in front of a `ChainNode`; every call goes through, except those a `Fault` matches."""

    def __init__(self, upstream: str) -> None:
        from rewards.management.commands.chain_node import JsonHandler

        self.upstream = upstream.removeprefix("http://")
        self.faults: list[Fault] = []
        self.calls: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(JsonHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body or b"null")
                method = request.get("method", "") if isinstance(request, dict) else ""
                params = request.get("params") or [] if isinstance(request, dict) else []
                proxy.calls.append(method)
                fault = proxy._take(method, params)
                if fault is not None and fault.action == "refuse":
                    self.close_connection = True
                    return  # no status line at all: the caller sees the connection closed
                if fault is not None and fault.action == "null_result":
                    # A lagging node: it does not know the transaction yet (a receipt read answers null).
                    self.send_json(json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": None}).encode())
                    return
                if fault is not None and fault.action == "rpc_error":
                    self.send_json(json.dumps({"jsonrpc": "2.0", "id": request.get("id"),
                                             "error": {"code": -32603, "message": fault.message}}).encode())
                    return
                if fault is not None and fault.action == "before":
                    fault.hook()
                answer = proxy._forward(body)
                if fault is None or fault.action == "before":
                    self.send_json(answer)
                    return
                fault.hit.set()
                if fault.action == "stall":
                    time.sleep(fault.seconds)
                elif fault.action == "hold":
                    fault.release.wait(120)
                self.close_connection = True  # drop_response, stall and hold: no answer ever arrives


        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take(self, method: str, params: list) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.hits < fault.times and fault.match(params):
                    fault.hits += 1
                    return fault
        return None

    def _forward(self, body: bytes) -> bytes:
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            return conn.getresponse().read()
        finally:
            conn.close()

    def close(self) -> None:
        for fault in self.faults:
            fault.release.set()
        self.server.shutdown()
        self.server.server_close()


def calls_function(contract, name: str) -> Callable[[list], bool]:
    """Matcher for `eth_sendRawTransaction` / `eth_estimateGas` params calling `contract.name(...)`."""
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    selector = bytes.fromhex(contract.contract.encode_abi(name, args=_zero_args(contract, name))[2:10])

    def match(params: list) -> bool:
        if not params:
            return False
        first = params[0]
        if isinstance(first, dict):  # eth_estimateGas / eth_call
            data = first.get("data") or first.get("input") or "0x"
        else:  # eth_sendRawTransaction: decode the signed bytes
            try:
                data = TypedTransaction.from_bytes(HexBytes(first)).as_dict().get("data", b"")
            except Exception:  # noqa: BLE001 - not a typed transaction: not ours
                return False
        data = bytes(HexBytes(data))
        return data[:4] == selector

    return match


def _zero_args(contract, name: str) -> list:
    abi = next(item for item in contract.contract.abi if item.get("type") == "function" and item["name"] == name)
    zero = {"address": "0x" + "0" * 40, "bytes32": b"\0" * 32, "bool": False, "string": "", "bytes": b""}
    return [[] if p["type"].endswith("]") else zero.get(p["type"], 0) for p in abi["inputs"]]


# --- PostgreSQL: a private cluster -------------------------------------------------------------------

class PrivatePostgres:
    """`initdb` into a temporary directory and `pg_ctl start` on a free port, as the `postgres` user
    (PostgreSQL refuses to run as root). Trust authentication on 127.0.0.1 only; removed on `destroy`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lineage-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)

    def init(self) -> PrivatePostgres:
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n"
                       "max_connections = 60\n")
        return self

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "-l", self.log, "restart")

    def create_database(self, name: str) -> str:
        self._run(PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


# --- The model server as a process ---------------------------------------------------------------------

class ModelServer:
    """`python -m inference.engine.server` on a fixed port, started with no base (bases and adapters are
    loaded over HTTP by `DeploymentSync`, as `serve_models` does)."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> ModelServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        offset = self.log.stat().st_size if self.log.exists() else 0  # a restart appends to the same log
        with open(self.log, "ab") as fh:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "inference.engine.server", "--port", str(self.port), "--threads", "1",
                 "--slots", "2", "--device", "cpu"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.process.poll() is not None
                 or f"serving on {self.url}".encode() in self.log.read_bytes()[offset:],
                 timeout, "the model server to listen", self.log)
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        return self

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
