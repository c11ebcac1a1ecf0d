"""Several model servers behind one client: requests spread over the servers holding the adapter, keep
succeeding when one server is killed mid-run, and a stream moves to another server only while no token
has reached the caller."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from model_server_support import ModelServerProcess
from transformers import AutoModelForCausalLM

from inference.client import ModelServerClient, ModelServerError, ServerConnection
from inference.engine.model_store import publish_adapter, publish_base
from inference.engine.testing import build_tiny_llama, save_random_adapter

torch.set_num_threads(1)
TOKEN = "routing-token"
BASE = "llama:causal_lm"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    work = tmp_path_factory.mktemp("routing")
    llama_dir = build_tiny_llama(work / "llama")
    sha = save_random_adapter(AutoModelForCausalLM.from_pretrained(llama_dir), work / "gen", rank=4,
                              target_modules=["q_proj", "v_proj"], scale=0.5)
    root = work / "model-root"  # shared by both servers, as a volume would be
    publish_base(root, "llama", llama_dir)
    publish_adapter(root, "gen-v1", work / "gen")
    return root, sha


def _loaded_server(root, sha) -> ModelServerProcess:
    server = ModelServerProcess(model_root=root, token=TOKEN).start()
    admin = ServerConnection(server.url, token=TOKEN, timeout=300)
    admin.load_base(name=BASE, model="llama", task="causal_lm", num_slots=2, max_rank=8)
    admin.load_adapter(name="gen", version="gen-v1", sha256=sha, base=BASE)
    admin.close()
    return server


@pytest.fixture(scope="module")
def healthy(model_root):
    server = _loaded_server(*model_root)
    yield server
    server.stop()


@pytest.fixture
def two_servers(model_root, healthy):
    """A fresh server (a test may kill it or change what it holds) and the module's healthy one."""
    spare = _loaded_server(*model_root)
    yield spare, healthy
    spare.stop()


def _completed(url: str) -> int:
    connection = ServerConnection(url, token=TOKEN)
    try:
        return connection.stats()["bases"][BASE]["completed"]
    finally:
        connection.close()


def test_requests_spread_and_survive_a_server_killed_mid_run(two_servers):
    first, second = two_servers
    # A long health TTL: the router keeps believing in the killed server until a request fails on it.
    client = ModelServerClient([first.url, second.url], token=TOKEN, health_ttl=3600)
    for _ in range(4):
        assert client.generate("hello world", adapter="gen", max_tokens=3, temperature=0)["usage"]["completion_tokens"]
    assert _completed(first.url) >= 1 and _completed(second.url) >= 1  # both took requests

    answers, errors = [], []

    def run() -> None:
        for i in range(16):
            try:
                if i % 2:
                    events = client.generate_stream("hello", adapter="gen", max_tokens=4, temperature=0.7, seed=i)
                    answers.append("".join(events.deltas()) == events.final["text"])
                else:
                    answers.append(isinstance(client.generate("fees", adapter="gen", max_tokens=4)["text"], str))
            except ModelServerError as exc:
                errors.append(exc.message)
            if len(answers) == 3:
                first.kill()  # SIGKILL, mid-run: requests in flight on it break

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=300)
    assert not worker.is_alive() and errors == [] and answers == [True] * 16
    view = {v.url: v for v in client.pool.views}
    assert view[first.url].healthy is False and view[second.url].healthy is True
    assert client.stats()["servers"][first.url]["up"] is False
    client.close()


def test_an_adapter_goes_to_the_servers_that_hold_it(two_servers):
    first, second = two_servers
    admin = ServerConnection(first.url, token=TOKEN)
    admin.unload_adapter(name="gen")
    admin.close()
    client = ModelServerClient([first.url, second.url], token=TOKEN)
    before = _completed(second.url)
    for _ in range(3):
        client.generate("hello", adapter="gen", max_tokens=2)
    assert _completed(second.url) == before + 3
    with pytest.raises(ModelServerError) as unknown:
        client.generate("hello", adapter="never-deployed", max_tokens=2)
    assert unknown.value.status == 404 and unknown.value.param == "adapter"
    client.close()


class _BrokenServer(ThreadingHTTPServer):
    """A model server that dies while answering: it claims the adapter, then on `/v1/generate` sends the
    stream's headers and `deltas_before_dying` deltas, and drops the connection."""

    daemon_threads = True

    def __init__(self, deltas_before_dying: int) -> None:
        self.deltas_before_dying = deltas_before_dying
        self.generate_calls = 0
        super().__init__(("127.0.0.1", 0), _BrokenHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _BrokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "instance": "broken", "bases": {BASE: {"task": "causal_lm"}},
                           "adapters": {"gen": {"base": BASE}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.generate_calls += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for _ in range(self.server.deltas_before_dying):
            self.wfile.write(b'data: {"delta": "partial"}\n\n')
        self.wfile.flush()
        self.close_connection = True


def test_a_stream_broken_before_its_first_token_is_retried_elsewhere(healthy):
    broken = _BrokenServer(deltas_before_dying=0)
    client = ModelServerClient([broken.url, healthy.url], token=TOKEN)
    before = _completed(healthy.url)
    events = client.generate_stream("hello", adapter="gen", max_tokens=5, temperature=0)
    assert events.server == broken.url  # the router's first choice...
    text = "".join(events.deltas())
    assert broken.generate_calls == 1 and _completed(healthy.url) == before + 1  # ...broke; the other answered
    assert text == events.final["text"] and events.final["usage"]["completion_tokens"] >= 1
    client.close()
    broken.shutdown()


def test_a_stream_broken_after_a_token_is_not_retried(healthy):
    broken = _BrokenServer(deltas_before_dying=1)
    client = ModelServerClient([broken.url, healthy.url], token=TOKEN)
    before = _completed(healthy.url)
    events = client.generate_stream("hello", adapter="gen", max_tokens=5, temperature=0)
    received = []
    with pytest.raises(ModelServerError) as broke:
        for delta in events.deltas():
            received.append(delta)
    assert received == ["partial"] and broke.value.code == "model_server_unavailable"
    assert _completed(healthy.url) == before  # never spliced with another server's answer
    client.close()
    broken.shutdown()


def test_one_url_keeps_the_single_server_behaviour(healthy):
    client = ModelServerClient(healthy.url + "/", token=TOKEN)
    assert client.base_url == healthy.url and client.status()["adapters"]["gen"]["version"] == "gen-v1"
    assert client.health()["status"] == "ok"
    several = ModelServerClient(f"{healthy.url}, {healthy.url}", token=TOKEN)
    with pytest.raises(ValueError, match="one model server"):
        several.load_adapter(name="x", version="v", sha256="0" * 64, base=BASE)
    with pytest.raises(ValueError, match="INFERENCE_SERVER_URL"):
        ModelServerClient(" , ")
    client.close()
    several.close()
