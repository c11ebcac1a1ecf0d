"""Issue #17: a streamed answer has a total deadline in the web tier (`INFERENCE_STREAM_MAX_S`).

The read timeout (`INFERENCE_TIMEOUT_S`) bounds each wait only, so a model server that keeps a stream alive
would hold a web thread, and the caller, forever. Past the deadline the stream ends with the same
`upstream_error` event as a model server that fell silent (`model_server_timeout`) and `[DONE]`; the request is
recorded failed with no fee and nothing is held from the payer's credit; the upstream connection is closed, so
the server can stop generating.

The model server is stood in for by a real HTTP server on a local port (a thread in this process) that sends
a first delta and then keeps the stream alive past the read timeout many times over: with SSE keep-alive
comments, with a token now and then, or with bytes that never end a line; or with keep-alive comments only,
before any token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from model_server_support import StandInHTTPServer

from inference import answering
from inference.models import InferenceRecord
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards import services as rewards_services
from rewards.models import PendingFee
from rewards.selectors import credit_balance

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
READ_TIMEOUT_S = 0.5  # INFERENCE_TIMEOUT_S in these tests
STREAM_MAX_S = 2.0  # INFERENCE_STREAM_MAX_S in these tests
TICK_S = 0.1  # the stand-in's pause between keep-alive writes: well inside the read timeout
PATIENCE_S = 10.0  # the stream must have ended well within this
PRICE = 10**15
GRANT = 10**17


class _Handler(BaseHTTPRequestHandler):
    server: KeepAliveServer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(self.path)
        behaviour = self.server.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if behaviour != "comments_before_any_token":
                self._write(b'data: {"delta": "partial"}\n\n')
            if behaviour == "finishes_in_time":  # kept alive past one read timeout, then finished well in time
                for _ in range(round(2 * READ_TIMEOUT_S / TICK_S)):
                    time.sleep(TICK_S)
                    self._write(b": keep-alive\n\n")
                final = {"text": "partial answer", "finish_reason": "stop", "slot": 0,
                         "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}
                self._write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
                return
            piece = {"comments": b": keep-alive\n\n", "comments_before_any_token": b": keep-alive\n\n",
                     "a_token_now_and_then": b'data: {"delta": " more"}\n\n', "bytes_without_a_line_end": b" "}
            # Until the web tier hangs up. Given up on after twice the test's patience, so a web tier without a
            # deadline fails the test (the stream then breaks off) instead of hanging it.
            give_up = time.monotonic() + 2 * PATIENCE_S
            while not self.server.release.wait(TICK_S) and time.monotonic() < give_up:
                self._write(piece[behaviour])
        except OSError:  # BrokenPipe / ConnectionReset: the web tier closed the stream
            self.server.hung_up.set()
        self.close_connection = True


class KeepAliveServer(StandInHTTPServer):
    def __init__(self, behaviour: str) -> None:
        self.hung_up = threading.Event()
        self.requests: list[str] = []
        super().__init__(_Handler, behaviour)


@pytest.fixture
def upstream(settings):
    started = []

    def point(behaviour: str) -> KeepAliveServer:
        started.append(KeepAliveServer(behaviour))
        settings.INFERENCE_SERVER_URL = started[-1].url
        settings.INFERENCE_TIMEOUT_S = READ_TIMEOUT_S
        settings.INFERENCE_STREAM_MAX_S = STREAM_MAX_S
        answering._local.__dict__.clear()
        return started[-1]

    yield point
    for server in started:
        server.stop()
    answering._local.__dict__.clear()


@pytest.fixture
def paid_writer(alice, charlie, staff):
    base = BaseModel.objects.create(name="writer base", slug="writer-base", source_kind="local", source_ref="tiny",
                                    architecture="llama", task_types=["instruction"])
    job = FineTuneJob.objects.create(owner=alice, name="writer", base_model=base, task="instruction")
    rewards_services.credit_grant(actor=staff, user=charlie, amount=GRANT, reason="stream deadline tests")
    return ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Writer", slug="writer", version_hash="w" * 64, task="instruction",
        label_names=[], storage_prefix="models/writer", manifest={}, price_per_inference=PRICE, deployed=True)


def _events(chunks) -> list:
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _texts(events) -> list[str]:
    return [e["choices"][0].get("delta", {}).get("content") or e["choices"][0].get("text") or ""
            for e in events if isinstance(e, dict) and e.get("choices")]


def _request(endpoint: str, model: str) -> tuple[str, dict]:
    if endpoint == "chat":
        return "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}],
                                        "stream": True}
    return "/v1/completions", {"model": model, "prompt": "hi", "stream": True}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
@pytest.mark.parametrize("behaviour", ["comments", "a_token_now_and_then", "bytes_without_a_line_end",
                                       "comments_before_any_token"])
def test_a_stream_kept_alive_past_its_deadline_ends_with_the_upstream_error(upstream, paid_writer, charlie,
                                                                            key_client, endpoint, behaviour):
    server = upstream(behaviour)
    path, body = _request(endpoint, paid_writer.slug)
    started = time.monotonic()
    response = key_client(charlie, "infer").post(path, body, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = _events(response.streaming_content)
    elapsed = time.monotonic() - started
    # Alive past the read timeout many times over (so the keep-alive writes did keep it alive), and ended.
    assert STREAM_MAX_S <= elapsed < PATIENCE_S

    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert set(error) == {"message", "type", "param", "code"}  # the upstream-error event's shape
    assert (error["type"], error["code"]) == ("upstream_error", "model_server_timeout"), error
    assert f"did not finish within {STREAM_MAX_S:g} seconds" in error["message"]
    assert "nothing was charged" in error["message"] and "127.0.0.1" not in error["message"]
    assert not any(isinstance(e, dict) and e.get("lineage") for e in events)  # no finished chunk, no receipt
    if behaviour != "comments_before_any_token":
        assert "partial" in _texts(events)  # what came before the deadline reached the caller

    record = InferenceRecord.objects.get(user=charlie)
    assert (record.status, record.error_code, record.fee) == ("failed", "model_server_timeout", 0)
    assert record.finished_at is not None and "did not finish within" in record.error
    assert not PendingFee.objects.filter(inference_id=str(record.pk)).exists()  # nothing held for it
    assert credit_balance(user=charlie) == GRANT
    # The web tier hung up on the server (which can then stop generating), and asked it only once.
    assert server.hung_up.wait(PATIENCE_S)
    assert server.requests == ["/v1/generate"]


def test_keep_alive_comments_within_the_deadline_are_skipped_and_the_answer_is_charged(upstream, paid_writer, charlie,
                                                                                       key_client):
    """A stream kept alive past the read timeout by keep-alive comments that finishes before the deadline is an
    ordinary answer: the comments are not content, and its fee is held as for any finished answer."""
    upstream("finishes_in_time")
    path, body = _request("chat", paid_writer.slug)
    response = key_client(charlie, "infer").post(path, body, format="json")
    events = _events(response.streaming_content)
    assert events[-1] == "[DONE]" and "error" not in events[-2]
    assert "".join(_texts(events)) == "partial"
    assert events[-2]["choices"][0]["finish_reason"] == "stop" and events[-2]["lineage"]["fee"] == str(PRICE)
    record = InferenceRecord.objects.get(user=charlie)
    assert (record.status, record.fee) == ("succeeded", PRICE)
    assert PendingFee.objects.filter(inference_id=str(record.pk)).exists()


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_a_stream_deadline_that_is_not_a_positive_number_is_refused_at_start(value):
    """Settings are read at start: a bad value stops the process with a message naming the variable and what
    to set, rather than leaving streams with no deadline or failing on the first request."""
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT,
                            env={**_clean_env(), "INFERENCE_STREAM_MAX_S": value}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert f"INFERENCE_STREAM_MAX_S='{value}' is not a positive number of seconds" in result.stderr
    assert "e.g. 360" in result.stderr


def _clean_env() -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_")},
            "DJANGO_SETTINGS_MODULE": "lineage.settings"}
