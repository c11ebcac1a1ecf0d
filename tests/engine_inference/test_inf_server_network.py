"""The model server facing a network: the bearer token, loads confined to the model root, the bind
address, request and idle timeouts, and a graceful shutdown (running streams finish, new requests refused)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
from model_server_support import ROOT, ModelServerProcess
from transformers import AutoModelForCausalLM

from inference.client import ModelServerClient, ModelServerError, ServerConnection
from inference.engine.model_store import ModelStore, publish_adapter, publish_base
from inference.engine.server import ServerConfigError, serve, token_from_environment
from inference.engine.testing import build_tiny_llama, save_random_adapter

torch.set_num_threads(1)
TOKEN = "test-token-7f3a"
BASE = "llama:causal_lm"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A model root holding a tiny Llama (id "llama") and one adapter (version "gen-v1")."""
    work = tmp_path_factory.mktemp("network")
    llama_dir = build_tiny_llama(work / "llama", hidden_size=64, layers=4, max_positions=1024)
    sha = save_random_adapter(AutoModelForCausalLM.from_pretrained(llama_dir), work / "gen", rank=4,
                              target_modules=["q_proj", "v_proj"], scale=0.5)
    root = work / "model-root"
    publish_base(root, "llama", llama_dir)
    publish_adapter(root, "gen-v1", work / "gen")
    return {"root": root, "work": work, "sha": sha, "llama_dir": llama_dir}


@pytest.fixture(scope="module")
def server(published):
    """A token-guarded in-process server with the base and adapter loaded by id."""
    running = serve(None, "127.0.0.1", 0, model_root=published["root"], token=TOKEN,
                    engine_defaults={"num_slots": 2, "max_rank": 8})
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    admin = ServerConnection(running.url, token=TOKEN)
    admin.load_base(name=BASE, model="llama", task="causal_lm")
    admin.load_adapter(name="gen", version="gen-v1", sha256=published["sha"], base=BASE)
    yield running
    admin.close()
    running.shutdown()
    running.server_close()
    running.close_engines()


@pytest.fixture
def impatient(published):
    """A server with 1-second request and idle timeouts (and no base: these tests never reach a model)."""
    running = serve(None, "127.0.0.1", 0, model_root=published["root"], token=TOKEN, request_timeout=1.0,
                    keep_alive_timeout=1.0)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def _call(url, method, path, body=None, token=None):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


ROUTES = [("GET", "/v1/health"), ("GET", "/v1/stats"), ("POST", "/v1/classify"), ("POST", "/v1/generate"),
          ("POST", "/v1/adapters/load"), ("POST", "/v1/adapters/unload"), ("POST", "/v1/adapters/pin"),
          ("POST", "/v1/bases/load"), ("POST", "/v1/bases/unload"), ("GET", "/v1/no-such-route")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_every_endpoint_but_healthz_needs_the_token(server, method, path, token):
    status, body = _call(server.url, method, path, {} if method == "POST" else None, token=token)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert "INFERENCE_SERVER_TOKEN" in body["error"]["message"]


def test_healthz_is_open_and_the_token_opens_the_rest(server, published):
    assert _call(server.url, "GET", "/healthz") == (200, {"status": "ok", "task": "causal_lm"})
    status, health = _call(server.url, "GET", "/v1/health", token=TOKEN)
    assert status == 200 and health["status"] == "ok" and health["model_root"] == str(published["root"].resolve())
    assert health["bases"] == {BASE: {"task": "causal_lm", "model": "llama"}}
    assert health["adapters"] == {"gen": {"base": BASE, "version": "gen-v1", "sha256": published["sha"]}}
    status, answer = _call(server.url, "POST", "/v1/generate", {"prompt": "hello", "adapter": "gen", "max_tokens": 3},
                           token=TOKEN)
    assert status == 200 and 1 <= answer["usage"]["completion_tokens"] <= 3


def test_a_client_with_the_wrong_token_gets_an_operator_error(server):
    client = ModelServerClient(server.url, token="not-the-token")
    with pytest.raises(ModelServerError) as refused:
        client.generate("hello", adapter="gen", max_tokens=2)
    client.close()
    # Never passed on as the API user's own authentication failure: a 503 naming the setting to fix.
    assert refused.value.status == 503 and refused.value.code == "model_server_auth"
    assert "INFERENCE_SERVER_TOKEN" in refused.value.message


@pytest.mark.parametrize(("path", "body", "status", "param", "says"), [
    ("/v1/adapters/load", {"name": "x", "path": "/etc", "sha256": "0" * 64}, 400, "path", "not by path"),
    ("/v1/adapters/load", {"name": "x", "version": "../gen-v1", "sha256": "0" * 64}, 400, "version", "not a path"),
    ("/v1/adapters/load", {"name": "x", "version": "/etc/passwd", "sha256": "0" * 64}, 400, "version", "not a path"),
    ("/v1/adapters/load", {"name": "x", "version": "no-such-version", "sha256": "0" * 64}, 404, "version",
     "publish it there first"),
    ("/v1/adapters/load", {"name": "x", "version": "escape", "sha256": "0" * 64}, 400, "version",
     "resolves outside the model root"),
    ("/v1/bases/load", {"name": "b", "path": "/tmp", "task": "causal_lm"}, 400, "path", "not by path"),
    ("/v1/bases/load", {"name": "b", "model": "..", "task": "causal_lm"}, 400, "model", "not a path"),
    ("/v1/bases/load", {"name": "b", "model": "missing", "task": "causal_lm"}, 404, "model", "publish it there"),
])
def test_loads_resolve_inside_the_model_root_only(server, published, path, body, status, param, says):
    escape = published["root"] / "adapters" / "escape"
    if not escape.exists():  # a link planted in the root, pointing at a real adapter outside it
        escape.symlink_to(published["work"] / "gen", target_is_directory=True)
    got, error = _call(server.url, "POST", path, body, token=TOKEN)
    assert got == status and error["error"]["param"] == param and says in error["error"]["message"]


def test_model_store_refuses_ids_that_are_not_one_plain_segment(tmp_path):
    store = ModelStore(tmp_path / "root")
    for bad in ("", ".", "..", "a/b", ".hidden", "x" * 200, None, 12):
        with pytest.raises(Exception, match="not a path"):
            store.adapter_dir(bad)


def test_binding_beyond_loopback_needs_a_token(published):
    with pytest.raises(ServerConfigError, match="without a token"):
        serve(None, "0.0.0.0", 0, model_root=published["root"], token="")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("INFERENCE_SERVER_TOKEN")}
    refused = subprocess.run([sys.executable, "-m", "inference.engine.server", "--host", "0.0.0.0", "--port", "0",
                              "--model-root", str(published["root"])], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "without a token" in refused.stderr and "INFERENCE_SERVER_TOKEN" in refused.stderr
    with pytest.raises(ServerConfigError, match="cannot be read"):
        token_from_environment(str(published["work"] / "no-such-file"))


def test_a_request_whose_body_never_arrives_times_out(impatient):
    with socket.create_connection(tuple(impatient.server_address), timeout=30) as raw:
        raw.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 200\r\n\r\n".encode() + b'{"prompt"')
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = raw.recv(4096)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504") and json.loads(body)["error"]["type"] == "timeout"


def test_an_idle_keep_alive_connection_is_closed(impatient):
    with socket.create_connection(tuple(impatient.server_address), timeout=30) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += raw.recv(4096)
        head, _, body = reply.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(body) < length:
            body += raw.recv(4096)
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["status"] == "ok"
        assert raw.recv(4096) == b""  # the server hung up on the idle connection (keep-alive 1 s), not us


def test_sigterm_lets_a_running_stream_finish_and_refuses_new_requests(published):
    # A grace period no slow machine exhausts: this test is about what the server does within it.
    server = ModelServerProcess(model_root=published["root"], token=TOKEN, args=("--graceful-timeout", "600")).start()
    try:
        admin = ServerConnection(server.url, token=TOKEN, timeout=300)
        admin.load_base(name=BASE, model="llama", task="causal_lm")
        # Greedy decoding on this base runs the full 1,000 tokens (several seconds): still going when the
        # signal arrives.
        events = admin.generate_stream("hello", adapter=None, max_tokens=1000, temperature=0)
        deltas = events.deltas()
        received = [next(deltas)]
        server.signal(signal.SIGTERM)
        refused, deadline = False, time.monotonic() + 20
        while not refused and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        received.extend(deltas)
        assert refused, "the draining server still accepted connections"
        assert events.final["usage"]["completion_tokens"] == 1000 and events.final["finish_reason"] == "length"
        assert "".join(received) == events.final["text"]
        assert server.process.wait(timeout=60) == 0
        admin.close()
    finally:
        server.stop()
