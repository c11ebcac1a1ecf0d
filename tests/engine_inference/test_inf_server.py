"""The model server's HTTP API: classify, generate (plain and streamed), adapter admin, errors, disconnects."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from inference.engine import ServingEngine, plain_chat_prompt
from inference.engine.model_store import publish_adapter
from inference.engine.server import serve
from inference.engine.testing import build_tiny_bert_classifier, build_tiny_llama, save_random_adapter

torch.set_num_threads(2)


def _start(engine, model_root):
    server = serve(engine, "127.0.0.1", 0, model_root=model_root, token="")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    bert_dir = build_tiny_bert_classifier(root / "bert")
    llama_dir = build_tiny_llama(root / "llama")
    adapters = {
        "cls": (root / "cls", save_random_adapter(AutoModelForSequenceClassification.from_pretrained(bert_dir),
                                                  root / "cls", rank=4, target_modules=["query", "value"],
                                                  modules_to_save=["classifier"])),
        "gen": (root / "gen", save_random_adapter(AutoModelForCausalLM.from_pretrained(llama_dir), root / "gen",
                                                  rank=4, target_modules=["q_proj", "v_proj"], scale=0.5)),
    }
    model_root = root / "model-root"
    for name, (path, _) in adapters.items():
        publish_adapter(model_root, name, path)  # loads name the published version, never a path
    classify = _start(ServingEngine.from_pretrained(bert_dir, "classification", num_slots=2, max_rank=8), model_root)
    generate = _start(ServingEngine.from_pretrained(llama_dir, "causal_lm", num_slots=2, max_rank=8), model_root)
    yield {"classify": classify, "generate": generate, "adapters": adapters}
    for server in (classify, generate):
        server.shutdown()
        server.server_close()
        server.engine.close()


def _call(server, method, path, body=None):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    connection.request(method, path, body=None if body is None else json.dumps(body),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, (json.loads(payload) if response.getheader("Content-Type") == "application/json"
                             else payload.decode())


def _load(server, adapters, name):
    _, sha = adapters[name]
    return _call(server, "POST", "/v1/adapters/load", {"name": name, "version": name, "sha256": sha})


def test_health_classify_and_stats(servers):
    server = servers["classify"]
    assert _call(server, "GET", "/healthz") == (200, {"status": "ok", "task": "classification"})
    status, info = _load(server, servers["adapters"], "cls")
    assert status == 200 and info["tier"] == "host"
    status, body = _call(server, "POST", "/v1/classify", {"input": ["hello world", "fees"], "adapter": "cls"})
    assert status == 200 and len(body["results"]) == 2
    assert sum(body["results"][0]["probabilities"].values()) == pytest.approx(1.0)
    status, pinned = _call(server, "POST", "/v1/adapters/pin", {"name": "cls"})
    assert status == 200 and pinned["pinned"] and pinned["tier"] == "device"
    status, stats = _call(server, "GET", "/v1/stats")
    assert stats["cache"]["adapters"]["cls"]["requests"] == 2 and stats["completed"] == 2
    assert _call(server, "POST", "/v1/adapters/unload", {"name": "cls"})[0] == 200
    status, error = _call(server, "POST", "/v1/classify", {"input": "hello", "adapter": "cls"})
    assert status == 404 and error["error"]["type"] == "not_found_error"


def test_generate_plain_and_streamed(servers):
    server = servers["generate"]
    assert _load(server, servers["adapters"], "gen")[0] == 200
    request = {"prompt": "hello world", "adapter": "gen", "max_tokens": 10, "temperature": 0}
    status, plain = _call(server, "POST", "/v1/generate", request)
    assert status == 200 and plain["usage"]["completion_tokens"] == len(plain["token_ids"])
    status, raw = _call(server, "POST", "/v1/generate", {**request, "stream": True})
    events = [line.removeprefix("data: ") for line in raw.split("\n\n") if line]
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["delta"] for c in chunks[:-1]) == plain["text"] == chunks[-1]["text"]


def test_generate_from_messages_renders_the_history(servers):
    server = servers["generate"]
    assert _load(server, servers["adapters"], "gen")[0] == 200
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "world"}, {"role": "user", "content": "how are you"}]
    request = {"adapter": "gen", "max_tokens": 6, "temperature": 0, "add_bos": True}
    status, chat = _call(server, "POST", "/v1/generate", {**request, "messages": messages})
    # This tokenizer has no chat template: the plain "role: content" format, every turn included.
    assert status == 200 and chat["prompt"] == plain_chat_prompt(messages)
    assert chat["prompt"].startswith("system: be brief\nuser: hello\nassistant: world\n")
    status, raw = _call(server, "POST", "/v1/generate", {**request, "prompt": chat["prompt"]})
    assert "prompt" not in raw and (raw["text"], raw["usage"]) == (chat["text"], chat["usage"])
    status, streamed = _call(server, "POST", "/v1/generate", {**request, "messages": messages, "stream": True})
    final = json.loads([line.removeprefix("data: ") for line in streamed.split("\n\n") if line][-2])
    assert final["prompt"] == chat["prompt"] and final["text"] == chat["text"]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"prompt": "hi", "temperature": -1}, 400, "temperature"),
    ({"prompt": "hi", "top_p": 2}, 400, "top_p"),
    ({"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": "hi " * 300, "max_tokens": 5}, 400, "prompt"),
    ({"prompt": ""}, 400, "prompt"),
    ({"prompt": "hi", "adapter": "nope"}, 404, "adapter"),
    ({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, 400, "messages"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages[0].role"),
    ({"messages": [{"role": "user", "content": None}]}, 400, "messages[0].content"),
])
def test_errors_are_openai_shaped(servers, body, status, param):
    got_status, error = _call(servers["generate"], "POST", "/v1/generate", body)
    assert got_status == status and error["error"]["param"] == param and error["error"]["message"]


def test_bad_json_wrong_route_and_bad_digest(servers):
    server = servers["generate"]
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("POST", "/v1/generate", body=b"{not json", headers={"Content-Type": "application/json"})
    assert connection.getresponse().status == 400
    connection.close()
    assert _call(server, "GET", "/v1/nothing")[0] == 404
    status, error = _call(server, "POST", "/v1/adapters/load", {"name": "x", "version": "gen", "sha256": "0" * 64})
    assert status == 422 and "sha256 mismatch" in error["error"]["message"]


def test_client_disconnect_mid_stream_frees_the_slot(servers):
    server = servers["generate"]
    _load(server, servers["adapters"], "gen")
    body = json.dumps({"prompt": "hello", "adapter": "gen", "max_tokens": 200, "temperature": 0.8, "seed": 1,
                       "stream": True}).encode()
    raw = socket.create_connection(server.server_address[:2], timeout=10)
    raw.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    received = b""
    while b"data: " not in received:  # wait until streaming has started
        chunk = raw.recv(4096)
        assert chunk, "server closed the stream early"
        received += chunk
    raw.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = _call(server, "GET", "/v1/stats")[1]
        if stats["running"] == 0 and stats["cache"]["device"]["locked_slots"] == 0:
            break
        time.sleep(0.05)
    assert stats["running"] == 0 and stats["cache"]["device"]["locked_slots"] == 0
    assert _call(server, "GET", "/healthz")[0] == 200
    status, plain = _call(server, "POST", "/v1/generate", {"prompt": "hello", "adapter": "gen", "max_tokens": 3})
    assert status == 200 and plain["usage"]["completion_tokens"] <= 3
