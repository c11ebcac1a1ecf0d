"""Issue #22, item 3 in the playground: an answer's receipt is queued (the attribution worker stores it seconds
later), so the answer's last chunk names nobody. The receipt panel says it is being computed, not that nobody's
influence counted, asks the receipts API until the receipt is stored (202 receipt_pending, then 200), and then
names the contributors by the public names the receipt page shows; if it never comes, the panel says so."""

import json

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

from models_registry.models import BaseModel, FineTuneJob, ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _deployed(owner) -> ModelVersion:
    base = BaseModel.objects.create(name="MiniLM", slug="minilm-queued", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=owner, name="intents", base_model=base, task="text-classification")
    return ModelVersion.objects.create(
        job=job, owner=owner, base_model=base, name="Intents", slug="intents", version_hash="a" * 64,
        task="text-classification", label_names=["billing", "shipping"], storage_prefix="models/intents",
        manifest={}, price_per_inference=0, deployed=True)


def _queued_answer(receipt_id: str):
    def answer(route):
        chunks = [{"choices": [{"index": 0, "delta": {"content": "billing"}}]},
                  {"choices": [], "lineage": {"fee": "0", "receipt_id": receipt_id, "receipt_status": "queued",
                                              "receipt_url": f"/attribution/receipts/{receipt_id}/",
                                              "contributors": [], "top_rows": []}}]
        route.fulfill(status=200, content_type="text/event-stream",
                      body="".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")
    return answer


def test_a_queued_receipt_is_awaited_and_names_the_contributors(live_server, page, alice, dora, charlie):
    """The model server and the attribution worker are stood in for (page.route): this is about the page."""
    model = _deployed(alice)
    asked = []

    def receipts(route):
        asked.append(route.request.url)
        if len(asked) < 3:  # the worker has not stored it yet
            route.fulfill(status=202, content_type="application/json", headers={"Retry-After": "1"},
                          body=json.dumps({"code": "receipt_pending", "fields": {}, "detail": "being computed"}))
            return
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "receipt_id": "rc-queued", "contributor_shares_ppm": {str(dora.pk): 250_000, str(alice.pk): 750_000},
            "contributor_names": {str(dora.pk): dora.public_name, str(alice.pk): alice.public_name},
            "top_rows": [{"row_id": "r12", "contributor_id": str(alice.pk), "score": 0.5}]}))

    login(page, live_server, charlie)
    page.route("**/v1/chat/completions", _queued_answer("rc-queued"))
    page.route("**/api/v1/attributions/rc-queued/", receipts)
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(model.slug)
    page.get_by_label("Message").fill("refund my payment")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("billing")
    contributors = page.locator("#pg-contributors")
    expect(contributors).to_contain_text("Being computed")
    expect(contributors).not_to_contain_text("noise floor")
    assert_accessible(page)

    bars = contributors.locator(".bar-row")
    expect(bars).to_have_count(2, timeout=15_000)
    expect(bars.nth(0)).to_contain_text(alice.public_name)  # the larger share first
    expect(bars.nth(0)).to_contain_text("75.0%")
    expect(bars.nth(1)).to_contain_text(dora.public_name)
    expect(page.locator("#pg-rows li")).to_have_text(["r12 · score 0.500"])
    assert len(asked) == 3
    assert_accessible(page)


def test_a_receipt_that_never_comes_is_said_so(live_server, page, alice, charlie):
    model = _deployed(alice)
    login(page, live_server, charlie)
    page.route("**/v1/chat/completions", _queued_answer("rc-lost"))
    page.route("**/api/v1/attributions/rc-lost/", lambda route: route.fulfill(
        status=404, content_type="application/json", body=json.dumps({"code": "not_found", "detail": "Not found."})))
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(model.slug)
    page.get_by_label("Message").fill("refund my payment")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#pg-contributors")).to_contain_text("The receipt is not ready yet: open it to see who is credited.")
    expect(page.get_by_test_id("receipt-link")).to_have_attribute("href", "/attribution/receipts/rc-lost/")
