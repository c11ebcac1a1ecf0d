"""Notifications fixtures: a real HTTP endpoint on 127.0.0.1 (http.server in a thread) that answers each
request with the next status of a script and records what it received, and small helpers."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Endpoint:
    """`statuses`: the answers, in order (the last one repeats); `delay_s`: wait before answering."""

    url: str
    statuses: list = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    received: list = field(default_factory=list)


@pytest.fixture
def endpoint():
    state = Endpoint(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                n = len(state.received)
                status = state.statuses[min(n, len(state.statuses)) - 1]
            if state.delay_s:
                time.sleep(state.delay_s)
            answer = json.dumps({"attempt": n}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client gave up waiting (the timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/lineage"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """`with run_on_commit(): ...` runs what the block queued on commit (tasks are eager in tests)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def datanet_of(db):
    """`datanet_of(owner, **overrides)`: a text-classification Datanet made by the service."""
    from datanets.services import datanet_create

    def make(owner, **overrides):
        options = {"name": "Support intents", "task_type": "text-classification", "label_set": ["billing", "shipping"]}
        options.update(overrides)
        return datanet_create(owner=owner, **options)

    return make
