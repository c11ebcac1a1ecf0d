"""The playground in a real browser: pick one of two deployed models, type a message, watch the answer
arrive from the real model server, then follow its attribution receipt; a user without credit is told so
and charged nothing."""

import re

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

from inference.integrations import credit_balance
from inference.models import InferenceRecord
from models_registry import services as registry_services
from rewards import services as rewards_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST = {"epochs": 4, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}
PRICE = 10**15
GRANT = 10**16
POSITIVE = ["I love this product", "great service thank you", "works perfectly", "very happy with it",
            "excellent quality", "the team was wonderful"]
NEGATIVE = ["this is terrible", "awful experience", "it broke after a day", "very disappointed",
            "worst purchase ever", "the team was rude"]


def test_playground_answers_with_the_chosen_model_and_its_receipt(
        live_server, page, browser, alice, dora, charlie, staff, serving, sync, publish, intent_rows, fine_tune,
        screenshot):
    base = registry_services.base_model_ensure_default()
    intents = fine_tune(owner=alice, name="Support intents", base_model=base,
                        datanet_versions=[publish(alice, intent_rows(), contributor=dora)], **FAST)
    sentiment_rows = [{"text": f"{t} {i}", "label": label} for i in range(4)
                      for label, texts in (("positive", POSITIVE), ("negative", NEGATIVE)) for t in texts]
    sentiment = fine_tune(owner=alice, name="Review sentiment", base_model=base, **FAST,
                          datanet_versions=[publish(alice, sentiment_rows, labels=("positive", "negative"),
                                                    name="Reviews", contributor=charlie)])
    for model in (intents, sentiment):
        model = registry_services.model_version_update(version=model, actor=alice, price_per_inference=PRICE)
        registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    assert sorted(sync().loaded) == sorted([intents.slug, sentiment.slug])
    rewards_services.credit_grant(actor=staff, user=charlie, amount=GRANT, reason="tests")

    login(page, live_server, charlie)
    page.goto(f"{live_server.url}/playground/")
    model_select = page.get_by_label("Model")
    expect(model_select.locator("option")).to_have_count(2)
    assert_accessible(page)

    # The intents model: a billing question is answered "billing", then its receipt and fee appear.
    model_select.select_option(intents.slug)
    page.get_by_label("Message").fill("refund my payment")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("billing")
    receipt_link = page.get_by_test_id("receipt-link")
    # Tasks run eagerly here: the queued receipt is computed on the request's commit, before the last chunk
    # (a real broker only takes the message), so the first receipt in this process can take a while.
    expect(receipt_link).to_have_attribute("href", re.compile(r"/attribution/receipts/[^/]+/$"), timeout=60_000)
    expect(page.locator("#pg-fee")).to_have_text("0.001")  # PRICE, shown in OPEN
    expect(page.locator("#pg-contributors")).not_to_be_empty()  # shares, or why there are none
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert_accessible(page)
    screenshot("playground")
    record = InferenceRecord.objects.filter(user=charlie, status="succeeded").get()
    assert record.model_slug == intents.slug and record.stream and record.fee == PRICE
    assert receipt_link.get_attribute("href").endswith(f"/attribution/receipts/{record.receipt_id}/")
    assert credit_balance(user=charlie) == GRANT - PRICE

    # Choosing the other model really routes to its adapter: the answer is one of that model's labels.
    model_select.select_option(sentiment.slug)
    page.get_by_label("Message").fill("excellent quality, very happy")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text(re.compile("^(positive|negative)$"))
    first_href = receipt_link.get_attribute("href")
    expect(receipt_link).not_to_have_attribute("href", first_href)  # this answer's own receipt
    expect(page.locator("#pg-receipt-body")).to_be_visible()
    assert_accessible(page)
    second = InferenceRecord.objects.get(user=charlie, status="succeeded", model_slug=sentiment.slug)
    assert receipt_link.get_attribute("href").endswith(f"/attribution/receipts/{second.receipt_id}/")

    # The receipt link opens the receipt of that answer: its input and the rows that trained the model.
    receipt_link.click()
    expect(page.get_by_role("heading", name="Attribution receipt")).to_be_visible()
    expect(page.get_by_test_id("input")).to_have_text("excellent quality, very happy")
    expect(page.locator("#method")).to_contain_text(second.receipt_id)
    assert_accessible(page)
    screenshot("playground-receipt")

    # Dora has no credit: the page says so, no receipt is shown and nothing is charged.
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    broke = context.new_page()
    login(broke, live_server, dora)
    broke.goto(f"{live_server.url}/playground/")
    broke.get_by_label("Model").select_option(intents.slug)
    broke.get_by_label("Message").fill("where is my parcel")
    broke.get_by_role("button", name="Send").click()
    expect(broke.get_by_role("alert")).to_contain_text("Insufficient credit")
    expect(broke.get_by_test_id("deposit-link")).to_have_attribute("href", "/rewards/deposit/")  # where to add some
    expect(broke.get_by_test_id("answer")).to_have_text("")
    expect(broke.locator("#pg-receipt-body")).to_be_hidden()
    assert_accessible(broke)
    context.close()
    failed = InferenceRecord.objects.get(user=dora)
    assert (failed.status, failed.error_code, failed.fee) == ("failed", "insufficient_quota", 0)

    for model in (intents, sentiment):
        registry_services.model_version_set_deployed(version=model, actor=alice, deployed=False)
    assert sorted(sync().unloaded) == sorted([intents.slug, sentiment.slug])
