"""Model servers as real processes (`python -m inference.engine.server`), for the serving tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class StandInHTTPServer(ThreadingHTTPServer):
    """A scripted stand-in for a model server, serving `handler` on a free local port from a daemon thread. Handlers
    read `behaviour` and may wait on `release`; `stop()` releases them and closes the server."""

    daemon_threads = True

    def __init__(self, handler, behaviour) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.behaviour = behaviour
        self.release = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModelServerProcess:
    """One server on a fixed port (so a restart comes back at the same URL), its output kept in `lines`."""

    def __init__(self, *, model_root: Path, token: str = "", port: int | None = None, args: tuple = ()) -> None:
        self.model_root, self.token, self.args = model_root, token, tuple(args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.lines: list[str] = []

    def start(self, timeout: float = 120) -> ModelServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_SERVER_TOKEN")}
        env.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                    "INFERENCE_SERVER_TOKEN": self.token})
        self.lines = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "inference.engine.server", "--port", str(self.port), "--threads", "1",
             "--slots", "2", "--max-rank", "8", "--device", "cpu", "--model-root", str(self.model_root), *self.args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("serving on "):
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.process.kill()
        raise AssertionError("the model server did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
