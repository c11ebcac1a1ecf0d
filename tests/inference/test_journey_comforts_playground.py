"""Issue #22, playground comforts: the settings shown fit the model (a classifier has no max tokens or
temperature, and none are sent), no empty answer box before the first answer, and a causal model keeps a
conversation: earlier turns stay on the page and go to the chat endpoint as the `messages` history."""

import json

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

from inference.models import InferenceRecord
from models_registry.models import BaseModel, FineTuneJob, ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _deployed(owner, *, name, slug, task, architecture):
    base = BaseModel.objects.create(name=f"{name} base", slug=f"{slug}-base", source_kind="local", source_ref="tiny",
                                    architecture=architecture, task_types=[task])
    job = FineTuneJob.objects.create(owner=owner, name=slug, base_model=base, task=task)
    return ModelVersion.objects.create(
        job=job, owner=owner, base_model=base, name=name, slug=slug, version_hash=slug[0] * 64, task=task,
        label_names=["billing", "shipping"] if task == "text-classification" else [],
        storage_prefix=f"models/{slug}", manifest={}, price_per_inference=0, deployed=True)


def _sse(*chunks) -> str:
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


def test_settings_fit_the_model_and_nothing_shows_before_the_first_answer(live_server, page, alice, charlie):
    """The model server is stood in for by a recorded answer (page.route): this is about the page."""
    intents = _deployed(alice, name="Intents", slug="intents", task="text-classification", architecture="bert")
    writer = _deployed(alice, name="Writer", slug="writer", task="instruction", architecture="llama")
    sent = []

    def answer(route):
        sent.append(json.loads(route.request.post_data))
        text = "billing" if sent[-1]["model"] == intents.slug else f"answer {len(sent)}"
        route.fulfill(status=200, content_type="text/event-stream", body=_sse(
            {"choices": [{"index": 0, "delta": {"content": text}}]},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1},
             "lineage": {"fee": "0", "receipt_id": None, "receipt_status": "not_available", "contributors": []}}))

    login(page, live_server, charlie)
    page.route("**/v1/chat/completions", answer)
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(intents.slug)

    # A classifier: no sampling settings, no conversation button, and no answer box until there is an answer.
    expect(page.get_by_label("Max tokens")).to_be_hidden()
    expect(page.get_by_label("Temperature")).to_be_hidden()
    expect(page.get_by_role("button", name="New conversation")).to_be_hidden()
    expect(page.get_by_test_id("kind-help")).to_contain_text("A classifier")
    expect(page.get_by_test_id("answer")).to_be_hidden()
    expect(page.get_by_text("The model's answer appears here.")).to_be_visible()
    assert_accessible(page)
    for text in ("refund my payment", "where is my parcel"):
        page.get_by_label("Message").fill(text)
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_test_id("answer")).to_have_text("billing")
    assert [body["messages"] for body in sent] == [[{"role": "user", "content": "refund my payment"}],
                                                   [{"role": "user", "content": "where is my parcel"}]]
    assert not any("max_tokens" in body or "temperature" in body for body in sent)
    expect(page.get_by_test_id("question")).to_have_text("where is my parcel")  # one message at a time
    expect(page.locator("#pg-conversation li")).to_have_count(0)
    assert_accessible(page)

    # A chat model: the settings come back and are sent; the conversation is kept and sent as history.
    page.get_by_label("Model").select_option(writer.slug)
    expect(page.get_by_label("Max tokens")).to_be_visible()
    expect(page.get_by_test_id("kind-help")).to_contain_text("keeps the conversation")
    page.get_by_label("Max tokens").fill("12")
    page.get_by_label("Message").fill("Write a haiku")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("answer 3")
    expect(page.get_by_label("Message")).to_have_value("")
    page.get_by_label("Message").fill("Shorter, please")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("answer 4")
    expect(page.locator("#pg-conversation li.turn-user")).to_have_text(["YouWrite a haiku"])
    expect(page.locator("#pg-conversation li.turn-assistant")).to_have_text(["Modelanswer 3"])
    assert sent[3]["messages"] == [{"role": "user", "content": "Write a haiku"},
                                   {"role": "assistant", "content": "answer 3"},
                                   {"role": "user", "content": "Shorter, please"}]
    assert (sent[3]["max_tokens"], sent[3]["temperature"]) == (12, 0.7)
    assert_accessible(page)

    # "New conversation" forgets the turns, on the page and in what is sent next.
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#pg-conversation li")).to_have_count(0)
    expect(page.get_by_test_id("answer")).to_be_hidden()
    page.get_by_label("Message").fill("Hello again")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("answer 5")
    assert sent[4]["messages"] == [{"role": "user", "content": "Hello again"}]


def test_a_refused_turn_is_not_kept_and_its_message_stays(live_server, page, alice, charlie):
    writer = _deployed(alice, name="Writer", slug="writer", task="instruction", architecture="llama")
    sent = []

    def refuse_then_answer(route):
        sent.append(json.loads(route.request.post_data))
        if len(sent) == 1:
            route.fulfill(status=400, content_type="application/json",
                          body=json.dumps({"error": {"message": "The model is busy.", "code": "busy"}}))
        else:
            route.fulfill(status=200, content_type="text/event-stream",
                          body=_sse({"choices": [{"index": 0, "delta": {"content": "fine"}}]}))

    login(page, live_server, charlie)
    page.route("**/v1/chat/completions", refuse_then_answer)
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(writer.slug)
    page.get_by_label("Message").fill("How are you?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_have_text("The model is busy.")
    expect(page.get_by_label("Message")).to_have_value("How are you?")  # nothing lost: send it again
    assert_accessible(page)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("fine")
    expect(page.get_by_role("alert")).to_be_hidden()
    assert sent[1]["messages"] == [{"role": "user", "content": "How are you?"}]  # the refused turn is not history
    expect(page.locator("#pg-conversation li")).to_have_count(0)


def test_a_real_causal_model_answers_a_conversation_through_the_chat_endpoint(live_server, page, charlie,
                                                                              causal_sums_model):
    model, _ = causal_sums_model
    bodies = []
    page.on("request", lambda request: bodies.append(json.loads(request.post_data))
            if request.url.endswith("/v1/chat/completions") else None)
    login(page, live_server, charlie)
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(model.slug)
    page.get_by_label("Max tokens").fill("6")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Message").fill("What is 2 plus 3?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=60_000)
    expect(page.get_by_label("Message")).to_have_value("")  # answered: the turn is kept
    first = page.get_by_test_id("answer").inner_text()
    page.get_by_label("Message").fill("What is 1 plus 1?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_label("Message")).to_have_value("", timeout=60_000)
    expect(page.locator("#pg-conversation li")).to_have_count(2)
    expect(page.locator("#pg-conversation li").first).to_contain_text("What is 2 plus 3?")
    assert bodies[1]["messages"] == [{"role": "user", "content": "What is 2 plus 3?"},
                                     {"role": "assistant", "content": first},
                                     {"role": "user", "content": "What is 1 plus 1?"}]
    records = list(InferenceRecord.objects.filter(user=charlie).order_by("created_at"))
    assert [r.status for r in records] == ["succeeded", "succeeded"]
    assert all(r.model_slug == model.slug for r in records)
    assert_accessible(page)
