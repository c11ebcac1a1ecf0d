"""Issue #19: a generative retrieval app streams its causal model's tokens as they are generated, then the citations
chunk (with the receipt and the fee, settled once, after the answer is complete), the usage chunk and [DONE]; a
stream that fails or is abandoned midway writes no receipt and charges nothing.

The model server is stood in for by a real HTTP server on a local port (a thread in this process, as in
tests/inference/test_model_server_upstream_errors.py) that speaks the engine's streaming protocol and pauses where
the test says, so the test can see a token arrive while the answer is still being written. The real tiny model
streams in test_retrieval_apps.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from documents_support import PLANTED_FACT
from model_server_support import StandInHTTPServer, free_port

from inference import answering
from inference.models import InferenceRecord, InferenceStatus
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from retrieval import services
from retrieval.models import RetrievalReceipt
from rewards import selectors as rewards_selectors
from rewards import services as rewards_services
from rewards.models import PendingFee

pytestmark = pytest.mark.django_db
OPEN = 10**18
PRICE = OPEN // 20
QUESTION = "How many homes does the Harrowgate turbine power?"
FIRST, REST = ["The turbine ", "powers "], ["about ", "31,000 ", "homes ", "[1]."]


class _Handler(BaseHTTPRequestHandler):
    server: StandInModelServer

    def log_message(self, *args) -> None:
        pass

    def _event(self, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.wfile.write(b"data: " + data + b"\n\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        self.server.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for delta in FIRST:
                self._event({"delta": delta})
            if self.server.behaviour == "cut":
                return  # the process died after its first tokens
            self.server.waiting.set()
            self.server.release.wait(30)  # the rest of the answer is still being generated
            for delta in REST:
                time.sleep(0.05)  # generating: a web tier that has gone is noticed at the next write
                self._event({"delta": delta})
            self._event({"text": "".join(FIRST + REST), "finish_reason": "stop", "slot": 0,
                         "usage": {"prompt_tokens": 120, "completion_tokens": 4, "total_tokens": 124}})
            self._event(b"[DONE]")
        except OSError:  # the web tier closed the stream: the generation is cancelled
            self.server.cancelled.set()


class StandInModelServer(StandInHTTPServer):
    def __init__(self, behaviour: str) -> None:
        self.bodies: list[dict] = []
        self.waiting, self.cancelled = threading.Event(), threading.Event()
        super().__init__(_Handler, behaviour)


@pytest.fixture
def model_server(settings):
    """`model_server("pause" | "cut")`: the web tier pointed at a stand-in behaving so."""
    started = []

    def start(behaviour: str) -> StandInModelServer:
        started.append(StandInModelServer(behaviour))
        settings.INFERENCE_SERVER_URL = started[-1].url
        settings.INFERENCE_TIMEOUT_S = 10
        answering._local.__dict__.clear()
        return started[-1]

    yield start
    for server in started:
        server.stop()
    answering._local.__dict__.clear()


@pytest.fixture
def writing_app(indexed_handbook, alice, dora, charlie):
    """Alice's paid generative app over her handbook (Dora contributed the PDF with the planted fact); its model
    is a deployed instruction model version the stand-in answers for. Charlie has 1 OPEN of credit."""
    version = indexed_handbook(alice, {dora: ["coastal-energy.pdf"], charlie: ["training.docx"]})
    base = BaseModel.objects.create(name="Writer base", slug="writer-base", source_kind="local", source_ref="tiny",
                                    architecture="llama", task_types=["instruction"])
    job = FineTuneJob.objects.create(owner=alice, name="writer", base_model=base, task="instruction")
    model = ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Writer", slug="writer", version_hash="w" * 64,
        task="instruction", label_names=[], storage_prefix="models/writer", manifest={}, price_per_inference=0,
        deployed=True)
    app = services.app_deploy(owner=alice, name="Written answers", versions=[version.pk], causal_model=model.slug,
                              passages=1, price_per_inference=PRICE)
    rewards_services.credit_grant(actor=None, user=charlie, amount=OPEN, reason="test credit")
    return app


def _ask(key_client, charlie, app, **extra):
    response = key_client(charlie, "infer").post("/v1/chat/completions", {
        "model": app.slug, "messages": [{"role": "user", "content": QUESTION}], "stream": True, "max_tokens": 8,
        **extra}, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream", response.content
    return response


def _event(raw: bytes):
    data = raw.decode().removeprefix("data: ").strip()
    return data if data == "[DONE]" else json.loads(data)


def _content(event) -> str | None:
    return event["choices"][0]["delta"].get("content") if isinstance(event, dict) and event.get("choices") else None


def test_tokens_arrive_while_the_answer_is_written_then_citations_usage_and_one_fee(model_server, writing_app,
                                                                                   dora, charlie, key_client):
    server = model_server("pause")
    response = _ask(key_client, charlie, writing_app, stream_options={"include_usage": True})
    stream = iter(response.streaming_content)
    assert _event(next(stream))["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    # The first tokens reach the caller while the model server is still writing the rest: nothing is settled yet.
    assert [_content(_event(next(stream))) for _ in FIRST] == FIRST
    # The stand-in flushes its second token a moment before it reaches its pause: wait for it to get there.
    assert server.waiting.wait(5) and not server.release.is_set()
    record = InferenceRecord.objects.get(user=charlie)
    assert (record.status, record.stream) == (InferenceStatus.RUNNING, True)
    assert not RetrievalReceipt.objects.exists() and not PendingFee.objects.exists()
    server.release.set()
    events = [_event(raw) for raw in stream]

    assert [_content(e) for e in events[:len(REST)]] == REST
    final, usage, done = events[len(REST):]
    assert done == "[DONE]"
    assert final["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    lineage = final["lineage"]
    [citation] = lineage["citations"]
    assert (citation["document"], citation["anchor"], citation["contributor"]) == ("coastal-energy.pdf", "p. 2",
                                                                                   "Dora")
    assert (lineage["answer_mode"], lineage["fee"], lineage["retrieval_app"]) == ("generative", str(PRICE),
                                                                                 writing_app.slug)
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 120, "completion_tokens": 4,
                                                         "total_tokens": 124}

    # The model wrote from the cited passage: it went, with the question, in the last user turn, streamed.
    [body] = server.bodies
    assert body["stream"] is True and body["adapter"] == "writer" and body["max_tokens"] == 8
    assert "[1] coastal-energy.pdf, p. 2:" in body["messages"][-1]["content"]
    assert PLANTED_FACT[:40] in body["messages"][-1]["content"] and QUESTION in body["messages"][-1]["content"]

    # One receipt of the whole answer, one fee held on Charlie's credit, shared to Dora's passage.
    receipt = RetrievalReceipt.objects.get()
    assert (receipt.receipt_id, receipt.output, receipt.answer_mode) == (lineage["receipt_id"], "".join(FIRST + REST),
                                                                          "generative")
    fee = PendingFee.objects.get()
    assert (fee.inference_id, int(fee.fee), fee.contributor_shares) == (lineage["inference_id"], PRICE,
                                                                        {str(dora.pk): 1_000_000})
    record.refresh_from_db()
    assert (record.status, int(record.fee), record.receipt_id, record.tokens_out) == (
        InferenceStatus.SUCCEEDED, PRICE, receipt.receipt_id, 4)
    assert rewards_selectors.credit_balance(user=charlie) == OPEN - PRICE


def test_a_stream_cut_midway_ends_with_the_error_and_charges_nothing(model_server, writing_app, charlie, key_client):
    model_server("cut")
    events = [_event(raw) for raw in _ask(key_client, charlie, writing_app).streaming_content]
    assert [_content(e) for e in events[1:1 + len(FIRST)]] == FIRST  # what came before the failure reached them
    error, done = events[-2:]
    assert done == "[DONE]" and error["error"]["code"] == "model_server_unavailable"
    assert error["error"]["type"] == "upstream_error" and "nothing was charged" in error["error"]["message"]
    assert not any(isinstance(e, dict) and "lineage" in e for e in events)
    record = InferenceRecord.objects.get(user=charlie)
    assert (record.status, record.error_code, int(record.fee), record.receipt_id) == (
        InferenceStatus.FAILED, "model_server_unavailable", 0, "")
    assert not RetrievalReceipt.objects.exists() and not PendingFee.objects.exists()
    assert rewards_selectors.credit_balance(user=charlie) == OPEN


def test_a_caller_who_leaves_midway_cancels_the_generation_and_pays_nothing(model_server, writing_app, charlie,
                                                                            live_server, api_key_for):
    server = model_server("pause")
    _, secret = api_key_for(charlie, "infer")
    received = []
    with httpx.stream("POST", f"{live_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": writing_app.slug, "messages": [{"role": "user", "content": QUESTION}],
                            "stream": True}, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(_content(_event(line.encode())))
            if received == ["", *FIRST]:
                break  # the first tokens are in: the caller leaves while the rest is being written
    server.release.set()  # the model server writes on; the web tier finds its caller gone at its next write
    assert server.cancelled.wait(10)  # and closes the generation, which the model server sees at its next write
    deadline = time.monotonic() + 10
    while (record := InferenceRecord.objects.get(user=charlie)).status == InferenceStatus.RUNNING:
        assert time.monotonic() < deadline, "the request was never recorded as cancelled"
        time.sleep(0.1)
    assert (record.status, record.error_code, int(record.fee)) == (InferenceStatus.CANCELLED, "client_disconnected", 0)
    assert not RetrievalReceipt.objects.exists() and not PendingFee.objects.exists()
    assert rewards_selectors.credit_balance(user=charlie) == OPEN


def test_a_model_server_that_is_down_is_a_plain_502_before_the_stream_starts(settings, writing_app, charlie,
                                                                              key_client):
    settings.INFERENCE_SERVER_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    answering._local.__dict__.clear()
    response = key_client(charlie, "infer").post("/v1/chat/completions", {
        "model": writing_app.slug, "messages": [{"role": "user", "content": QUESTION}], "stream": True},
        format="json")
    assert response.status_code == 502 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "model_server_unavailable"
    record = InferenceRecord.objects.get(user=charlie)
    assert (record.status, int(record.fee)) == (InferenceStatus.FAILED, 0)
    assert not RetrievalReceipt.objects.exists()
    answering._local.__dict__.clear()
