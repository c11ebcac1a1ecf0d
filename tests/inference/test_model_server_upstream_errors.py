"""Issue #17: a model server that is down or too slow reaches API users as a clear 502 `upstream_error`
(`model_server_unavailable` / `model_server_timeout`), uncharged, on /v1/chat/completions, /v1/completions
and the native API; a stream that fails after it started ends with that error event and `[DONE]` instead
of hanging; the playground page shows the message.

The model server is stood in for by a real HTTP server on a local port (a thread in this process) that
takes the request and then says nothing past the web tier's read timeout, stalls or dies mid-stream, or
answers with the real server's own deadline error; "down" is a port nobody listens on."""

from __future__ import annotations

import itertools
import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
from model_server_support import StandInHTTPServer, free_port

from inference import answering
from inference.client import ModelServerClient, ModelServerError
from inference.models import InferenceRecord
from models_registry.models import BaseModel, FineTuneJob, ModelVersion

pytestmark = pytest.mark.django_db
READ_TIMEOUT_S = 0.5  # the web tier's INFERENCE_TIMEOUT_S in these tests
PATIENCE_S = 8.0  # a failure must be answered well within this: nothing may wait for the stalled server


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        if self.path == "/v1/health":  # what the router reads with several servers
            self._json(200, {"status": "ok", "instance": self.server.name, "model_root": "/nowhere",
                             "bases": {}, "adapters": {name: {} for name in self.server.adapters}})
        else:
            self._json(404, {"error": {"message": "no route", "type": "not_found_error"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.server.requests.append(("POST", self.path))
        behaviour = self.server.behaviour
        if behaviour == "answer":
            self._json(200, {"text": "ok", "finish_reason": "stop", "usage": {"prompt_tokens": 1,
                                                                              "completion_tokens": 1}})
            return
        if behaviour == "server_deadline":  # what the real server answers past its --request-timeout
            from inference.engine.server_app import RequestTimeoutError

            self._json(504, RequestTimeoutError("the request did not complete within the server's request "
                                                "timeout and was cancelled").to_dict())
            return
        if behaviour == "slow" or not body.get("stream"):
            self.server.release.wait(30)  # took the request, then silence past the read timeout
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b'data: {"delta": "partial"}\n\n')
        self.wfile.flush()
        if behaviour == "stall_mid_stream":
            self.server.release.wait(30)
        self.close_connection = True  # "cut_mid_stream": the process died after its first delta


class StandInServer(StandInHTTPServer):
    def __init__(self, behaviour: str, *, name: str = "stand-in", adapters=()) -> None:
        self.name, self.adapters = name, tuple(adapters)
        self.requests: list[tuple[str, str]] = []
        super().__init__(_Handler, behaviour)


@pytest.fixture
def upstream(settings):
    """`upstream("slow")` points the web tier at a stand-in server behaving so; `upstream(None)` at a closed
    port. The web tier's read timeout is READ_TIMEOUT_S."""
    started = []

    def point(behaviour: str | None) -> str:
        if behaviour is None:
            url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        else:
            started.append(StandInServer(behaviour))
            url = started[-1].url
        settings.INFERENCE_SERVER_URL = url
        settings.INFERENCE_TIMEOUT_S = READ_TIMEOUT_S
        answering._local.__dict__.clear()
        return url

    yield point
    for server in started:
        server.stop()
    answering._local.__dict__.clear()


def _deployed(owner, *, slug: str, task: str) -> ModelVersion:
    base = BaseModel.objects.create(name=f"{slug} base", slug=f"{slug}-base", source_kind="local", source_ref="tiny",
                                    architecture="bert" if task == "text-classification" else "llama",
                                    task_types=[task])
    job = FineTuneJob.objects.create(owner=owner, name=slug, base_model=base, task=task)
    return ModelVersion.objects.create(
        job=job, owner=owner, base_model=base, name=slug.title(), slug=slug, version_hash=slug[0] * 64, task=task,
        label_names=["billing", "shipping"] if task == "text-classification" else [],
        storage_prefix=f"models/{slug}", manifest={}, price_per_inference=0, deployed=True)


@pytest.fixture
def writer(alice):
    return _deployed(alice, slug="writer", task="instruction")


def _request(endpoint: str, model: str, **extra) -> tuple[str, dict]:
    if endpoint == "chat":
        return "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return "/v1/completions", {"model": model, "prompt": "hi", **extra}


def _events(chunks) -> list:
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _assert_upstream_error(error: dict, code: str) -> None:
    assert error["type"] == "upstream_error" and error["code"] == code, error
    assert "nothing was charged" in error["message"]
    assert "127.0.0.1" not in error["message"]  # the server's address is for the operators' log only


def _assert_recorded_failed(user, code: str) -> None:
    record = InferenceRecord.objects.filter(user=user).order_by("-created_at").first()
    assert (record.status, record.error_code, record.fee) == ("failed", code, 0)
    assert record.finished_at is not None


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("behaviour", "code"), [
    (None, "model_server_unavailable"),  # the port is closed
    ("slow", "model_server_timeout"),  # took the request and said nothing past INFERENCE_TIMEOUT_S
    ("server_deadline", "model_server_timeout"),  # the server's own deadline cut the request
])
def test_a_down_or_slow_model_server_is_a_502_upstream_error(upstream, writer, charlie, key_client, endpoint, stream,
                                                              behaviour, code):
    upstream(behaviour)
    path, body = _request(endpoint, writer.slug, stream=stream, max_tokens=4)
    started = time.monotonic()
    response = key_client(charlie, "infer").post(path, body, format="json")
    assert time.monotonic() - started < PATIENCE_S
    # Even a stream: it fails before its first byte, so the answer is the plain JSON error.
    assert response.status_code == 502, response.content
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"error"}
    _assert_upstream_error(payload["error"], code)
    _assert_recorded_failed(charlie, code)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
@pytest.mark.parametrize(("behaviour", "code"), [
    ("stall_mid_stream", "model_server_timeout"),  # one delta, then silence with the connection open
    ("cut_mid_stream", "model_server_unavailable"),  # one delta, then the connection closes
])
def test_a_stream_failing_after_it_started_ends_with_the_error_event(upstream, writer, charlie, key_client, endpoint,
                                                                     behaviour, code):
    upstream(behaviour)
    path, body = _request(endpoint, writer.slug, stream=True, max_tokens=4)
    started = time.monotonic()
    response = key_client(charlie, "infer").post(path, body, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = _events(response.streaming_content)
    assert time.monotonic() - started < PATIENCE_S  # ended, not hung on the stalled server
    texts = [e["choices"][0].get("delta", {}).get("content") or e["choices"][0].get("text")
             for e in events[:-2] if isinstance(e, dict) and e.get("choices")]
    assert "partial" in texts  # what came before the failure reached the caller
    assert events[-1] == "[DONE]"
    _assert_upstream_error(events[-2]["error"], code)
    assert not any(isinstance(e, dict) and e.get("lineage") for e in events)  # no finished chunk, no receipt
    _assert_recorded_failed(charlie, code)


def test_the_native_classification_api_answers_502_too(upstream, alice, charlie, key_client):
    intents = _deployed(alice, slug="intents", task="text-classification")
    for behaviour, code in ((None, "model_server_unavailable"), ("slow", "model_server_timeout")):
        upstream(behaviour)
        response = key_client(charlie, "infer").post("/api/v1/inferences/", {"model": intents.slug, "input": "refund"},
                                                     format="json")
        assert response.status_code == 502, response.content
        assert response.json()["code"] == code and "nothing was charged" in response.json()["detail"]
        _assert_recorded_failed(charlie, code)


def test_bad_requests_are_still_the_callers_errors_not_upstream_ones(upstream, writer, charlie, key_client):
    """The 502 is for the upstream only: a missing model or a bad parameter never reaches the server."""
    upstream(None)
    api = key_client(charlie, "infer")
    missing = api.post("/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]},
                       format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    bad = api.post("/v1/completions", {"model": writer.slug, "prompt": "x", "max_tokens": -1}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_a_slow_server_among_several_is_not_retried_but_is_routed_around():
    """A request that timed out may still be running: it is not sent to the other server (it would run
    twice), but the next requests go to the healthy one until the slow one's health check answers again."""
    slow, quick = StandInServer("slow", name="slow", adapters=["m"]), StandInServer("answer", name="quick",
                                                                                    adapters=["m"])
    client = ModelServerClient([slow.url, quick.url], token="", timeout=READ_TIMEOUT_S, health_ttl=3600)
    client.pool._turn = itertools.repeat(0)  # no round robin: the servers in the order given, the slow one first
    try:
        with pytest.raises(ModelServerError) as timed_out:
            client.generate("hi", adapter="m")
        assert timed_out.value.code == "model_server_timeout" and timed_out.value.status == 504
        assert slow.requests.count(("POST", "/v1/generate")) == 1
        assert ("POST", "/v1/generate") not in quick.requests  # not retried elsewhere
        assert {view.url: view.healthy for view in client.pool.views} == {slow.url: False, quick.url: True}
        assert client.generate("hi", adapter="m")["text"] == "ok"  # the next one goes to the healthy server
        assert slow.requests.count(("POST", "/v1/generate")) == 1
    finally:
        client.close()
        slow.stop()
        quick.stop()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_playground_shows_the_upstream_error(upstream, live_server, page, alice, charlie):
    from browser_support import login
    from playwright.sync_api import expect

    writer = _deployed(alice, slug="writer", task="instruction")
    login(page, live_server, charlie)
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(writer.slug)

    upstream(None)  # down: the request is refused before the stream starts
    page.get_by_label("Message").fill("hello")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("The model server is not reachable right now")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    upstream("stall_mid_stream")  # stalls after a first delta: the page shows that delta and the error
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("The model server did not answer in time")
    expect(page.get_by_test_id("answer")).to_have_text("partial")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert InferenceRecord.objects.filter(user=charlie, status="failed").count() == 2
