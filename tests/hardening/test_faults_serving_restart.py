"""The model-server process is killed (SIGKILL) while it streams a paid answer, then started again.

The streaming client must get a clean OpenAI-shaped error event and `[DONE]`, not a truncated answer
passed off as complete; an unfinished answer is never charged (the design: "a failed answer costs
nothing"); a request made while the server is down gets a 503 JSON error, uncharged; and once the server
is back (and `serve_models`' sync has loaded the adapter again) the next answer works and is charged
exactly once.
"""

import json

import pytest
from django.core.management import call_command
from faults_support import ModelServer, free_port

from inference.client import ModelServerClient
from inference.deployments import DeploymentSync
from inference.models import InferenceRecord
from models_registry import services as registry_services
from models_registry.models import BaseModel
from models_registry.training import build_tiny_causal_model
from rewards import services as rewards_services
from rewards.models import PendingFee, Settlement
from rewards.selectors import credit_balance

pytestmark = pytest.mark.django_db
PRICE = 10**15
GRANT = 10**17


@pytest.fixture
def model_server(tmp_path, settings):
    server = ModelServer(free_port(), tmp_path / "model-server.log").start()
    settings.INFERENCE_SERVER_URL = server.url
    settings.INFERENCE_SLOTS = 2
    settings.INFERENCE_TIMEOUT_S = 30
    # Receipt and fee in the request, as asserted below (the queued default is covered by test_real_broker.py).
    settings.INFERENCE_RECEIPTS_ASYNC = False
    from inference import answering

    answering._local.__dict__.clear()  # no keep-alive client from another test's server
    yield server
    server.stop()


def _sync(url: str):
    """What `serve_models` does at start and on each poll: load the deployed adapters into the server."""
    client = ModelServerClient(url, timeout=120)
    try:
        return DeploymentSync(client).sync()
    finally:
        client.close()


@pytest.fixture
def paid_causal_model(alice, publish, tmp_path, django_capture_on_commit_callbacks):
    rows = [{"prompt": f"What is {a} plus {b}?", "response": f"{a + b}"} for a in range(5) for b in range(5)]
    path = build_tiny_causal_model(tmp_path / "tiny-llama", [f"{r['prompt']} {r['response']}" for r in rows],
                                   arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref=str(path),
                                    architecture="llama", task_types=["instruction", "text"])
    version = publish(alice, rows, task_type="instruction", labels=(), name="Sums")
    with django_capture_on_commit_callbacks(execute=True):  # training, then the index build, in-process
        job = registry_services.fine_tune_create(owner=alice, name="sums", base_model=base,
                                                 datanet_versions=[version], epochs=1, batch_size=8,
                                                 max_seq_length=32, eval_fraction=0.2)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    model = registry_services.model_version_update(version=job.model_version, actor=alice, price_per_inference=PRICE)
    return registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)


def _events(chunks) -> list:
    events = []
    for chunk in chunks:
        for block in chunk.decode().split("\n\n"):
            if block.startswith("data: "):
                data = block.removeprefix("data: ")
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_model_server_killed_mid_stream_errors_cleanly_charges_nothing_and_recovers(
        model_server, paid_causal_model, charlie, staff, key_client):
    model = paid_causal_model
    assert _sync(model_server.url).loaded == [model.slug]
    rewards_services.credit_grant(actor=staff, user=charlie, amount=GRANT, reason="fault tests")
    api = key_client(charlie, "infer")
    body = {"model": model.slug, "prompt": "What is", "max_tokens": 400, "temperature": 2.0, "seed": 3, "stream": True}

    response = api.post("/v1/completions", body, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    stream = iter(response.streaming_content)
    received = [next(stream), next(stream)]  # the opening chunk and a first real delta
    model_server.kill9()
    received += list(stream)  # the rest, after the kill: must end cleanly, not hang or raise
    events = _events(received)
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["type"] == "upstream_error" and error["code"] == "model_server_unavailable"
    assert not any(isinstance(e, dict) and e.get("lineage") for e in events)  # no "finished" chunk, no receipt
    cut = InferenceRecord.objects.filter(user=charlie).order_by("-created_at").first()
    assert cut.status == "failed" and cut.fee == 0 and cut.finished_at is not None
    assert not Settlement.objects.filter(inference_id=str(cut.pk)).exists()
    assert not PendingFee.objects.filter(inference_id=str(cut.pk)).exists()  # nothing held either
    assert credit_balance(user=charlie) == GRANT

    # While the server is down: a clean 502 in OpenAI's shape, uncharged.
    down = api.post("/v1/completions", {**body, "stream": False, "max_tokens": 4}, format="json")
    assert down.status_code == 502, down.content
    assert down.json()["error"]["code"] == "model_server_unavailable"
    assert credit_balance(user=charlie) == GRANT

    model_server.start()
    assert _sync(model_server.url).loaded == [model.slug]
    after = api.post("/v1/completions", {**body, "max_tokens": 6, "temperature": 0}, format="json")
    assert after.status_code == 200
    events = _events(after.streaming_content)
    assert events[-1] == "[DONE]" and "error" not in events[-2]
    lineage = events[-2]["lineage"]
    assert lineage["fee"] == str(PRICE)
    rewards_services.fees_settle_pending()  # what the beat (or the on-demand task) does with recorded fees
    assert Settlement.objects.filter(inference_id=lineage["inference_id"]).count() == 1
    assert Settlement.objects.count() == 1 and not PendingFee.objects.exists()
    assert credit_balance(user=charlie) == GRANT - PRICE  # charged once, for the one finished answer
    statuses = sorted(InferenceRecord.objects.filter(user=charlie).values_list("status", flat=True))
    assert statuses == ["failed", "failed", "succeeded"]
    assert not InferenceRecord.objects.filter(status="running").exists()  # nothing left hanging
    call_command("ledger_check")
