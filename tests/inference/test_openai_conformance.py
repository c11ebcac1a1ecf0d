"""Issue #18, item 3: OpenAI conformance checked by two unmodified clients.

The official `openai` client and langchain-openai's `ChatOpenAI` talk to a live Django server, which proxies
to a real model-server process serving a fine-tuned tiny causal LM: multi-turn chat through the tokenizer's
chat template, `stream_options.include_usage`, `models.retrieve`, 429 `insufficient_quota`, 400s naming
unsupported parameters, and `stop`, `seed` and `max_completion_tokens`.
"""

import json
from types import SimpleNamespace

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from transformers import AutoTokenizer

from inference import answering, integrations
from inference.engine import plain_chat_prompt, render_chat
from inference.engine.testing import build_tokenizer
from inference.models import InferenceRecord
from models_registry import services as registry_services
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from models_registry.training import build_tiny_causal_model

PRICE = 5 * 10**16

HISTORY = [
    {"role": "system", "content": "You add small numbers."},
    {"role": "user", "content": "What is 1 plus 1?"},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": "What is 2 plus 3?"},
]


# --- The prompt builder: what a causal model sees for a chat history.


def test_the_chat_template_renders_every_turn(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_causal_model(tmp_path / "m", ["what is 1 plus 1"],
                                                                      vocab_size=280))
    # The tiny models' template is their training format; it drops system messages.
    assert render_chat(tokenizer, HISTORY) == (
        "### Instruction:\nWhat is 1 plus 1?\n\n### Response:\n2<|eos|>"
        "### Instruction:\nWhat is 2 plus 3?\n\n### Response:\n")


def test_a_tokenizer_without_template_gets_role_content_lines(tmp_path):
    tokenizer = build_tokenizer(tmp_path / "tok")
    assert not tokenizer.chat_template
    expected = ("system: You add small numbers.\nuser: What is 1 plus 1?\nassistant: 2\nuser: What is 2 plus 3?\n"
                "assistant:")
    assert render_chat(tokenizer, HISTORY) == plain_chat_prompt(HISTORY) == expected


def test_chat_prompt_sends_causal_models_the_history_and_classifiers_the_last_user_turn():
    messages = [("developer", "Be brief."), ("user", "What is 1 plus 1?"), ("assistant", "2"),
                ("user", "What is 2 plus 3?")]
    instruction = answering.chat_prompt(SimpleNamespace(task="instruction"), messages)
    assert instruction.server_input() == {"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1 plus 1?"},
        {"role": "assistant", "content": "2"}, {"role": "user", "content": "What is 2 plus 3?"}]}
    # The receipt scores the last instruction: training rows are single instructions.
    assert instruction.receipt_input(answering.Answer("5", "stop", 9, 1, 1, prompt_text="rendered")) == \
        "What is 2 plus 3?"
    text = answering.chat_prompt(SimpleNamespace(task="text"), messages)
    assert text.server_input() == instruction.server_input()
    assert text.receipt_input(answering.Answer("5", "stop", 9, 1, 1, prompt_text="rendered")) == "rendered"
    classifier = answering.chat_prompt(SimpleNamespace(task="text-classification"), messages)
    assert classifier.server_input() == {"prompt": "What is 2 plus 3?"}
    assert classifier.receipt_input(answering.Answer("billing", "stop", 5, 0, 1)) == "What is 2 plus 3?"


# --- Errors and model objects (no model runs: refused before the model server).


@pytest.fixture
def paid_model(db, alice):
    base = BaseModel.objects.create(name="Tiny", slug="tiny", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])

    def version(slug, digit, deployed):
        job = FineTuneJob.objects.create(owner=alice, name=slug, base_model=base, task="text-classification")
        return ModelVersion.objects.create(
            job=job, owner=alice, base_model=base, name=slug, slug=slug, version_hash=digit * 64,
            task="text-classification", label_names=["billing", "shipping"], storage_prefix="models/" + digit * 64,
            manifest={}, price_per_inference=PRICE, deployed=deployed)

    version("intents-draft", "d", deployed=False)
    return version("intents-paid", "c", deployed=True)


def test_models_retrieve_is_the_listed_object_and_404s_otherwise(paid_model, openai_client, alice, charlie):
    api = openai_client(charlie)
    model = api.models.retrieve(paid_model.slug)
    assert (model.id, model.object, model.owned_by) == (paid_model.slug, "model", alice.public_name)
    assert model.created == int(paid_model.created_at.timestamp())
    assert model.model_dump() == api.models.list().data[0].model_dump()
    assert model.model_extra["lineage"]["price_per_inference"] == str(PRICE)
    for missing, user in (("no-such-model", charlie), ("intents-draft", charlie), ("intents-draft", alice)):
        with pytest.raises(openai.NotFoundError) as error:
            openai_client(user).models.retrieve(missing)
        body = error.value.body
        assert (body["type"], body["param"], body["code"]) == ("invalid_request_error", "model", "model_not_found")
        assert f"'{missing}'" in body["message"]


def test_short_credit_is_a_429_insufficient_quota_that_clients_do_not_retry(paid_model, live_server, api_key_for,
                                                                            charlie):
    _, secret = api_key_for(charlie, "infer")
    api = openai.OpenAI(api_key=secret, base_url=f"{live_server.url}/v1", max_retries=2, timeout=60)
    with pytest.raises(openai.RateLimitError) as short:
        api.chat.completions.create(model=paid_model.slug, messages=[{"role": "user", "content": "refund"}])
    assert short.value.status_code == 429
    assert short.value.code == short.value.type == "insufficient_quota" and short.value.param is None
    assert set(short.value.body) == {"message", "type", "param", "code"}
    assert "/rewards/deposit/" in short.value.message and "costs 0.05 OPEN" in short.value.message
    assert short.value.response.headers["x-should-retry"] == "false"
    # One request, not three: the client honoured x-should-retry. It is recorded, uncharged.
    (record,) = InferenceRecord.objects.filter(user=charlie)
    assert (record.status, record.error_code, record.fee) == ("failed", "insufficient_quota", 0)

    with pytest.raises(openai.RateLimitError) as streamed:
        api.chat.completions.create(model=paid_model.slug, stream=True, stream_options={"include_usage": True},
                                    messages=[{"role": "user", "content": "refund"}])
    assert streamed.value.code == "insufficient_quota"

    # The second client gets the same error (langchain-openai raises the openai exception).
    with pytest.raises(openai.RateLimitError) as chained:
        ChatOpenAI(model=paid_model.slug, api_key=secret, base_url=f"{live_server.url}/v1", max_retries=0
                   ).invoke("refund")
    assert chained.value.code == "insufficient_quota"


UNSUPPORTED = [
    ("tools", {"tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]}),
    ("tool_choice", {"tool_choice": "auto"}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("response_format", {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}),
    ("logprobs", {"logprobs": True}),
    ("top_logprobs", {"top_logprobs": 2}),
    ("n", {"n": 2}),
    ("presence_penalty", {"presence_penalty": 0.5}),
    ("logit_bias", {"logit_bias": {"5": 10}}),
]


def test_unsupported_parameters_are_400s_naming_them(paid_model, openai_client, live_server, api_key_for, charlie):
    api = openai_client(charlie)
    hello = [{"role": "user", "content": "hello"}]
    for param, extra in UNSUPPORTED:
        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(model=paid_model.slug, messages=hello, **extra)
        assert refused.value.param == param, refused.value.body
        assert refused.value.code == "unsupported_parameter" and refused.value.type == "invalid_request_error"
        assert f"'{param}'" in refused.value.message
    with pytest.raises(openai.BadRequestError) as no_stream:
        api.chat.completions.create(model=paid_model.slug, messages=hello, stream_options={"include_usage": True})
    assert no_stream.value.param == "stream_options"
    for param, extra in (("echo", {"echo": True}), ("best_of", {"best_of": 2}), ("logprobs", {"logprobs": 1}),
                         ("suffix", {"suffix": " end"})):
        with pytest.raises(openai.BadRequestError) as refused:
            api.completions.create(model=paid_model.slug, prompt="hello", **extra)
        assert refused.value.param == param
    assert not InferenceRecord.objects.exists()  # refused before anything is recorded or checked

    # Values that ask for nothing unsupported pass validation (and reach the credit check).
    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(model=paid_model.slug, messages=hello, response_format={"type": "text"},
                                    tool_choice="none", logprobs=False, top_logprobs=0, n=1, presence_penalty=0)

    # The second client: tools bound, or JSON mode, are refused the same way.
    _, secret = api_key_for(charlie, "infer")
    chat = ChatOpenAI(model=paid_model.slug, api_key=secret, base_url=f"{live_server.url}/v1", max_retries=0)

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    with pytest.raises(openai.BadRequestError) as tools:
        chat.bind_tools([add]).invoke("What is 2 plus 3?")
    assert tools.value.param == "tools"
    with pytest.raises(openai.BadRequestError) as json_mode:
        chat.bind(response_format={"type": "json_object"}).invoke("What is 2 plus 3?")
    assert json_mode.value.param == "response_format"


# --- A causal model, multi-turn, streamed and sampled, through both clients.


@pytest.fixture
def fresh_bases(serving):
    """Unload the bases this test loads into the session's model server, so later tests find it as it was."""
    before = set(httpx.get(f"{serving}/v1/stats", timeout=30).json().get("bases") or {})
    yield
    for name in set(httpx.get(f"{serving}/v1/stats", timeout=30).json().get("bases") or {}) - before:
        httpx.post(f"{serving}/v1/bases/unload", json={"name": name}, timeout=60).raise_for_status()


def _stop_in(text: str) -> str | None:
    """Two letters or digits the sampled text has after its start: a stop sequence it would meet."""
    return next((text[i:i + 2] for i in range(1, len(text) - 1)
                 if text[i:i + 2].isascii() and text[i:i + 2].isalnum() and text.find(text[i:i + 2]) >= 1), None)


def _text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_causal_chat_through_both_clients(openai_client, alice, charlie, serving, fresh_bases, sync, causal_sums_model,
                                          live_server, api_key_for):
    model, path = causal_sums_model
    tokenizer = AutoTokenizer.from_pretrained(path)
    api = openai_client(charlie)

    # Multi-turn: the model is conditioned on the rendered history (BOS + the chat template's text).
    rendered = tokenizer.apply_chat_template(HISTORY, tokenize=False, add_generation_prompt=True)
    assert "What is 1 plus 1?" in rendered and rendered.endswith("What is 2 plus 3?\n\n### Response:\n")
    prompt_tokens = 1 + len(tokenizer(rendered)["input_ids"])
    answer = api.chat.completions.create(model=model.slug, messages=HISTORY, temperature=0, max_tokens=8)
    text = answer.choices[0].message.content
    assert answer.usage.prompt_tokens == prompt_tokens
    assert answer.usage.total_tokens == prompt_tokens + answer.usage.completion_tokens
    single = api.chat.completions.create(model=model.slug, messages=HISTORY[-1:], temperature=0, max_tokens=8)
    assert single.usage.prompt_tokens < prompt_tokens
    # The same prompt sent raw through /v1/completions gives the same greedy answer.
    raw = api.completions.create(model=model.slug, prompt=rendered, temperature=0, max_tokens=8)
    assert raw.choices[0].text == text and raw.usage.prompt_tokens == prompt_tokens
    record = InferenceRecord.objects.get(pk=answer.model_extra["lineage"]["inference_id"])
    assert record.tokens_in == prompt_tokens
    assert record.query_digest == integrations.query_digest("What is 2 plus 3?", text)  # receipt: the last turn

    # Streaming with include_usage: usage only in a last chunk with no choices; lineage with finish_reason.
    chunks = list(api.chat.completions.create(model=model.slug, messages=HISTORY, temperature=0, max_tokens=8,
                                              stream=True, stream_options={"include_usage": True}))
    assert _text(chunks) == text and chunks[0].choices[0].delta.role == "assistant"
    *content, finish, usage = chunks
    assert usage.choices == [] and usage.usage.model_dump(include={"prompt_tokens", "completion_tokens",
                                                                   "total_tokens"}) == \
        answer.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
    assert finish.choices[0].finish_reason == answer.choices[0].finish_reason and finish.usage is None
    assert finish.model_extra["lineage"]["inference_id"]
    assert all(c.usage is None and len(c.choices) == 1 and c.choices[0].finish_reason is None for c in content)
    # Without include_usage nothing carries usage and every chunk has its choice.
    plain = list(api.chat.completions.create(model=model.slug, messages=HISTORY, temperature=0, max_tokens=8,
                                             stream=True))
    assert _text(plain) == text and all(c.usage is None and len(c.choices) == 1 for c in plain)
    assert plain[-1].choices[0].finish_reason == answer.choices[0].finish_reason

    # seed: same seed and parameters, same sampled answer; find one long enough for the stop checks.
    def sampled(seed, **extra):
        params = {"temperature": 2.0, "max_tokens": 24, **extra}
        return api.chat.completions.create(model=model.slug, messages=HISTORY, seed=seed, **params)

    by_seed = {seed: sampled(seed) for seed in range(1, 9)}
    assert len({a.choices[0].message.content for a in by_seed.values()}) > 1  # sampling does vary by seed
    seed, long = next((s, a) for s, a in by_seed.items()
                      if _stop_in(a.choices[0].message.content) and a.usage.completion_tokens > 4)
    long_text = long.choices[0].message.content
    assert sampled(seed).choices[0].message.content == long_text
    streamed = list(api.chat.completions.create(model=model.slug, messages=HISTORY, seed=seed, temperature=2.0,
                                                max_tokens=24, stream=True))
    assert _text(streamed) == long_text

    # stop: the answer ends before the first stop sequence found, finish_reason "stop", streamed or not.
    stop = _stop_in(long_text)
    cut = long_text[:long_text.find(stop)]
    assert 0 < len(cut) < len(long_text)
    stopped = sampled(seed, stop=[stop, "never-generated"])
    assert stopped.choices[0].message.content == cut and stopped.choices[0].finish_reason == "stop"
    assert sampled(seed, stop=stop).choices[0].message.content == cut  # a single string
    streamed = list(api.chat.completions.create(model=model.slug, messages=HISTORY, seed=seed, temperature=2.0,
                                                max_tokens=24, stop=[stop], stream=True))
    assert _text(streamed) == cut and streamed[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError) as five:
        sampled(seed, stop=["a", "b", "c", "d", "e"])
    assert five.value.param == "stop"

    # max_completion_tokens takes precedence over max_tokens.
    short = sampled(seed, max_completion_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    assert long_text.startswith(short.choices[0].message.content)
    with pytest.raises(openai.BadRequestError) as zero:
        sampled(seed, max_completion_tokens=0)
    assert zero.value.param == "max_completion_tokens"

    # The second client: langchain-openai's ChatOpenAI, unmodified, on the same calls.
    _, secret = api_key_for(charlie, "infer")
    history = [SystemMessage(HISTORY[0]["content"]), HumanMessage(HISTORY[1]["content"]),
               AIMessage(HISTORY[2]["content"]), HumanMessage(HISTORY[3]["content"])]

    def chat(**options):
        return ChatOpenAI(model=model.slug, api_key=secret, base_url=f"{live_server.url}/v1", max_retries=0,
                          timeout=120, **options)

    greedy = chat(temperature=0, max_tokens=8)  # sent as max_completion_tokens
    message = greedy.invoke(history)
    assert message.content == text and message.usage_metadata["input_tokens"] == prompt_tokens
    assert message.response_metadata["finish_reason"] == answer.choices[0].finish_reason
    pieces = list(chat(temperature=0, max_tokens=8, stream_usage=True).stream(history))
    total = pieces[0]
    for piece in pieces[1:]:
        total += piece
    assert total.content == text
    assert total.usage_metadata["input_tokens"] == prompt_tokens
    assert total.usage_metadata["output_tokens"] == answer.usage.completion_tokens
    sampler = chat(temperature=2.0, max_tokens=24, seed=seed)
    assert sampler.invoke(history).content == long_text
    assert sampler.invoke(history, stop=[stop]).content == cut
    assert "".join(p.content for p in sampler.stream(history, stop=[stop])) == cut
    assert chat(temperature=2.0, max_tokens=3, seed=seed).invoke(history).usage_metadata["output_tokens"] == 3

    # And raw HTTP (server-sent events read by hand) agrees on the usage chunk.
    with httpx.stream("POST", f"{live_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                      json={"model": model.slug, "messages": HISTORY, "temperature": 0, "max_tokens": 8,
                            "stream": True, "stream_options": {"include_usage": True}}, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == prompt_tokens
    assert last["object"] == "chat.completion.chunk"

    registry_services.model_version_set_deployed(version=model, actor=alice, deployed=False)
    assert sync().unloaded == [model.slug]
