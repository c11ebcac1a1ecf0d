"""The OpenAI-compatible API end to end: the official `openai` client against a live Django server, which
proxies to a real model-server process serving real fine-tuned model versions (MiniLM classifier and a
tiny causal LM on a second base in the same process), with receipts, fees and records."""

import time

import httpx
import openai
import pytest
from django.core.cache import cache

from inference import selectors as inference_selectors
from inference.integrations import credit_balance
from inference.models import InferenceRecord
from models_registry import services as registry_services
from rewards import services as rewards_services

FAST = {"epochs": 4, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}
PRICE = 10**15
GRANT = 10**16


def _records(**filters):
    return list(InferenceRecord.objects.filter(**filters).order_by("created_at"))


def test_errors_are_openai_shaped_before_any_model_runs(openai_client, charlie, serving, live_server, api_key_for):
    client = openai_client(charlie)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"
    assert "does not exist" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as hot:
        client.chat.completions.create(model="no-such-model", temperature=3,
                                       messages=[{"role": "user", "content": "hi"}])
    assert hot.value.param == "temperature" and "at most 2" in hot.value.message
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="m", messages=[])
    assert empty.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as n:
        client.completions.create(model="m", prompt="hi", n=2)
    assert n.value.param == "n"
    bad_key = openai.OpenAI(api_key="lin_nope_nope", base_url=f"{live_server.url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad_key.models.list()
    assert auth.value.code == "invalid_api_key"
    read_only = openai_client(charlie, "read")
    with pytest.raises(openai.PermissionDeniedError) as scope:
        read_only.models.list()
    assert "infer" in scope.value.message
    assert client.models.list().data == []
    # The failed request for an unknown model is recorded, uncharged.
    (record,) = _records(user=charlie)
    assert record.status == "failed" and record.error_code == "model_not_found" and record.fee == 0


def test_classifier_chat_stream_receipt_fee_and_records(openai_client, alice, dora, charlie, staff, serving, sync,
                                                         publish, intent_rows, fine_tune, live_server, client,
                                                         key_client):
    datanet_version = publish(alice, intent_rows(), contributor=dora)
    model = fine_tune(owner=alice, name="Support intents", base_model=registry_services.base_model_ensure_default(),
                      datanet_versions=[datanet_version], **FAST)
    model = registry_services.model_version_update(version=model, actor=alice, price_per_inference=PRICE)
    model.refresh_from_db()
    assert model.attribution_status == "ready"  # built on registration (tasks run eagerly)

    # Not deployed yet: the owner is told so; nothing is charged.
    with pytest.raises(openai.NotFoundError) as undeployed:
        openai_client(alice).chat.completions.create(model=model.slug, messages=[{"role": "user", "content": "x"}])
    assert undeployed.value.code == "model_not_deployed"

    registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    report = sync()
    assert report.loaded == [model.slug] and not report.failed
    rewards_services.credit_grant(actor=staff, user=charlie, amount=GRANT, reason="tests")
    api = openai_client(charlie)
    assert [m.id for m in api.models.list().data] == [model.slug]

    # A chat completion on a classifier answers with the predicted label, a receipt and the fee.
    answer = api.chat.completions.create(model=model.slug, messages=[{"role": "user", "content": "refund my payment"}])
    assert answer.choices[0].message.content == "billing" and answer.choices[0].finish_reason == "stop"
    lineage = answer.model_extra["lineage"]
    assert lineage["fee"] == str(PRICE) and lineage["model_version_hash"] == model.version_hash
    assert lineage["receipt_id"] and lineage["receipt_url"].endswith(f"/attribution/receipts/{lineage['receipt_id']}/")
    assert set(lineage["classification"]["probabilities"]) == {"billing", "shipping"}
    # Every training row is Dora's: any share the receipt names is hers (the attribution app may leave the
    # shares empty when no row clears its noise floor; the fee then follows the policy's fallback).
    assert {c["user_id"] for c in lineage["contributors"]} <= {dora.pk}
    record = InferenceRecord.objects.get(pk=lineage["inference_id"])
    assert (record.status, record.fee, record.receipt_id) == ("succeeded", PRICE, lineage["receipt_id"])
    assert record.model_version_hash == model.version_hash and record.adapter_slot and record.tokens_in > 0
    assert credit_balance(user=charlie) == GRANT - PRICE
    assert httpx.get(lineage["receipt_url"]).status_code == 200

    # Streaming: OpenAI chunks, the label as content, the lineage extension on the last chunk.
    chunks = list(api.chat.completions.create(model=model.slug, stream=True,
                                              messages=[{"role": "user", "content": "where is my parcel"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "shipping"
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["lineage"]["receipt_id"]
    assert credit_balance(user=charlie) == GRANT - 2 * PRICE

    # A too-long input fails in the engine (context length): an OpenAI error, and no fee.
    with pytest.raises(openai.BadRequestError) as too_long:
        api.chat.completions.create(model=model.slug, messages=[{"role": "user", "content": "parcel " * 700}])
    assert too_long.value.code == "context_length_exceeded"
    assert credit_balance(user=charlie) == GRANT - 2 * PRICE
    assert _records(user=charlie)[-1].status == "failed" and _records(user=charlie)[-1].fee == 0

    # No credit: refused with OpenAI's 429 insufficient_quota before the model runs.
    with pytest.raises(openai.RateLimitError) as broke:
        openai_client(dora).chat.completions.create(model=model.slug, messages=[{"role": "user", "content": "hi"}])
    assert broke.value.status_code == 429 and broke.value.code == "insufficient_quota"
    assert _records(user=dora)[-1].error_code == "insufficient_quota"

    # The native classification API answers with labels and probabilities.
    native = key_client(charlie, "infer").post("/api/v1/inferences/", {"model": model.slug, "input": "my invoice is wrong"},
                                               format="json")
    assert native.status_code == 201, native.content
    body = native.json()
    assert body["label"] == "billing" and sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["lineage"]["fee"] == str(PRICE) and body["lineage"]["receipt_id"]
    missing = key_client(charlie, "infer").post("/api/v1/inferences/", {"model": "nope", "input": "x"}, format="json")
    assert missing.status_code == 404 and missing.json()["code"] == "model_not_found"
    assert len(_records(user=charlie, status="succeeded")) == 3

    # Operator page and Prometheus metrics show the per-adapter counts from the model server.
    client.force_login(staff)
    page = client.get("/playground/operator/")
    assert page.status_code == 200 and model.slug in page.content.decode()
    # It refreshes itself in place (htmx polling), not with a meta refresh that reloads under the reader.
    assert 'http-equiv="refresh"' not in page.content.decode() and 'hx-trigger="every 10s"' in page.content.decode()
    overview = inference_selectors.operator_overview()
    # The session's model server may hold other tests' bases too: this model's base is the one serving it.
    (base,) = [b for b in overview["bases"] if any(a["name"] == model.slug for a in b["adapters"])]
    assert base["adapters"][0]["name"] == model.slug and base["adapters"][0]["requests"] == 3
    metrics = client.get("/metrics").content.decode()
    assert f'lineage_model_server_adapter_requests{{adapter="{model.slug}"' in metrics
    assert f'lineage_inference_requests_total{{adapter="{model.slug}",endpoint="chat.completions",status="succeeded"}}' \
        in metrics
    client.force_login(charlie)
    assert client.get("/playground/operator/").status_code == 302  # staff only
    assert model.slug in client.get("/playground/").content.decode()

    # Undeploying unloads the adapter on the next sync; the API then says it is not deployed.
    registry_services.model_version_set_deployed(version=model, actor=alice, deployed=False)
    assert sync().unloaded == [model.slug]
    cache.clear()


def test_causal_model_completions_stream_and_disconnect(openai_client, alice, charlie, serving, sync,
                                                       causal_sums_model, live_server, api_key_for):
    model, _ = causal_sums_model
    api = openai_client(charlie)

    answer = api.chat.completions.create(model=model.slug, temperature=0, max_tokens=8,
                                         messages=[{"role": "user", "content": "What is 2 plus 3?"}])
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage.prompt_tokens > 0
    lineage = answer.model_extra["lineage"]
    assert lineage["fee"] == "0" and lineage["model_version_hash"] == model.version_hash
    assert "receipt_id" in lineage  # a receipt once the index is ready; null (never an error) before
    streamed = list(api.chat.completions.create(model=model.slug, temperature=0, max_tokens=8, stream=True,
                                                stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "What is 2 plus 3?"}]))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        answer.choices[0].message.content
    assert streamed[-1].usage.completion_tokens == answer.usage.completion_tokens

    completion = api.completions.create(model=model.slug, prompt="What is 1 plus 1?", max_tokens=5, temperature=0)
    assert completion.object == "text_completion" and completion.model_extra["lineage"]["inference_id"]
    text = "".join(c.choices[0].text for c in api.completions.create(
        model=model.slug, prompt="What is 1 plus 1?", max_tokens=5, temperature=0, stream=True))
    assert text == completion.choices[0].text

    with pytest.raises(openai.BadRequestError) as too_long:
        api.completions.create(model=model.slug, prompt="plus " * 600, max_tokens=5)
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as bad_top_p:
        api.completions.create(model=model.slug, prompt="hi", top_p=0)
    assert bad_top_p.value.param == "top_p"

    # A client that leaves mid-stream: the generation is cancelled and the request recorded as such.
    _, secret = api_key_for(charlie, "infer")
    with httpx.stream("POST", f"{live_server.url}/v1/completions", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": model.slug, "prompt": "What is", "max_tokens": 400, "temperature": 2.0,
                            "seed": 7, "stream": True}, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and '"text": ""' not in line:
                break  # one real delta received: leave
    deadline = time.monotonic() + 30
    record = None
    while time.monotonic() < deadline:
        record = InferenceRecord.objects.filter(user=charlie, stream=True, endpoint="completions").order_by(
            "-created_at").first()
        if record.status != "running":
            break
        time.sleep(0.2)
    assert record.status == "cancelled" and record.fee == 0 and record.error_code == "client_disconnected"
    registry_services.model_version_set_deployed(version=model, actor=alice, deployed=False)
    assert sync().unloaded == [model.slug]
