"""Issue #22: every page where people read an amount of OPEN shows it as the rewards pages do, rounded to 6
decimals for reading with the exact amount kept in the markup (`|open_rounded`: `<data value>` and `title`):
the model card's price and the playground's credit, model prices and fees. The playground's script rounds the
fee of each answer with the same rule (static/js/open_amounts.js), checked here against `rewards.amounts` in
Chromium. What people type (the owner's price field) and what programs read (the API) stay exact.
The governance pages are checked in tests/governance/test_open_amounts_governance.py."""

import json
import random
import re
from html import escape

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards.amounts import UINT256_MAX, format_open, format_open_rounded
from rewards.services import credit_grant

OPEN = 10**18
# 0.0500000000003 OPEN: shown as 0.05. (Prices of any size are exact: tests/models_registry/test_price_precision.py.)
PRICE = OPEN // 20 + 3 * 10**5
CREDIT = 1_234 * OPEN + 567_890_500_000_000_003  # 1,234.567890500000000003: shown as 1,234.567891


def shown(amount: int, unit: str = "OPEN") -> str:
    return (f'<data value="{format_open(amount, grouping=False)}" title="{format_open(amount)} {unit}">'
            f'{escape(format_open_rounded(amount))} {unit}</data>')


def visible_text(page: str) -> str:
    return re.sub(r"<[^>]+>", " ", page)


def _deployed_classifier(owner, *, price: int, slug="intents", attribution_status="ready") -> ModelVersion:
    base = BaseModel.objects.create(name="MiniLM", slug=f"{slug}-base", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=owner, name=slug, base_model=base, task="text-classification")
    return ModelVersion.objects.create(
        job=job, owner=owner, base_model=base, name="Support intents", slug=slug, version_hash=slug[0] * 64,
        task="text-classification", label_names=["billing", "shipping"], storage_prefix=f"models/{slug}",
        manifest={}, price_per_inference=price, deployed=True, attribution_status=attribution_status)


@pytest.mark.django_db
def test_the_model_card_rounds_the_price_and_the_owner_types_it_exactly(client, alice, charlie):
    model = _deployed_classifier(alice, price=0)
    client.force_login(alice)
    response = client.post(f"/models/{model.slug}/", {"price_per_inference": "0.0500000000003"})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.price_per_inference == PRICE

    client.force_login(charlie)
    card = client.get(f"/models/{model.slug}/").content.decode()
    assert f'<dd data-testid="price">{shown(PRICE)}</dd>' in card
    assert ">0.05 OPEN</data>" in card and "0.0500000000003" not in visible_text(card)
    # The owner's field shows what was typed, exactly: saving the form again changes nothing.
    client.force_login(alice)
    owner_card = client.get(f"/models/{model.slug}/").content.decode()
    assert 'value="0.0500000000003"' in owner_card
    # The API keeps base units (and the exact price in OPEN).
    api = client.get(f"/api/v1/models/{model.slug}/").json()
    assert (api["price_per_inference"], api["price_open"]) == (str(PRICE), "0.0500000000003")


@pytest.mark.django_db
def test_a_price_the_service_refuses_comes_back_on_the_form(client, alice):
    model = _deployed_classifier(alice, price=0, attribution_status="none")
    client.force_login(alice)
    response = client.post(f"/models/{model.slug}/", {"price_per_inference": "0.05"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "it cannot charge before the index is ready" in page and 'value="0.05"' in page
    model.refresh_from_db()
    assert model.price_per_inference == 0


@pytest.mark.django_db
def test_the_playground_rounds_the_credit_and_each_models_price(client, alice, charlie, staff):
    model = _deployed_classifier(alice, price=PRICE)
    credit_grant(actor=staff, user=charlie, amount=CREDIT, reason="tests")
    client.force_login(charlie)
    page = client.get("/playground/").content.decode()
    assert f'Your credit: <strong>{shown(CREDIT)}</strong>' in page
    # An <option> holds text only: the rounded price in its label, the exact one in its title.
    option = re.search(rf'<option value="{model.slug}"[^>]*>[^<]*</option>', page).group(0)
    assert 'title="0.0500000000003 OPEN per answer"' in option
    assert option.endswith("Support intents · text-classification · 0.05 OPEN</option>")
    assert f'data-price="{PRICE}"' in option  # base units for the script
    assert "1,234.567890500000000003" not in visible_text(page)


def _answer_with_fee(fee: str):
    def answer(route):
        chunks = [{"choices": [{"index": 0, "delta": {"content": "billing"}}]},
                  {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                   "lineage": {"fee": fee, "receipt_id": None, "receipt_status": "not_available", "contributors": []}}]
        route.fulfill(status=200, content_type="text/event-stream",
                      body="".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")
    return answer


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_playground_script_rounds_the_fee_as_the_pages_do(live_server, page, alice, charlie):
    """The model server is stood in for by a recorded answer (page.route): this is about how the page shows it."""
    model = _deployed_classifier(alice, price=CREDIT)
    login(page, live_server, charlie)
    page.route("**/v1/chat/completions", _answer_with_fee(str(CREDIT)))
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(model.slug)
    page.get_by_label("Message").fill("refund my payment")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("billing")
    fee = page.locator("#pg-fee")
    expect(fee).to_have_text("1,234.567891")
    expect(fee).to_have_attribute("value", "1234.567890500000000003")
    expect(fee).to_have_attribute("title", "1,234.567890500000000003 OPEN")
    assert_accessible(page)

    # The script's rule is the server's, amount for amount: the edges, then a spread of sizes.
    rng = random.Random(22)
    amounts = [0, 1, 7, 10**12 - 1, 10**12, 15 * 10**11, 6 * OPEN + 4, 1_234_567_500_000_000_000,
               1_234_567_499_999_999_999, 999_999_500_000_000_000, CREDIT, UINT256_MAX, -1, -(6 * OPEN + 4)]
    amounts += [rng.randrange(10 ** rng.randrange(1, 78)) for _ in range(400)]
    script = page.evaluate(
        "amounts => amounts.map(a => [LineageOpen.rounded(a), LineageOpen.exact(a, true), LineageOpen.exact(a, false)])",
        [str(a) for a in amounts])
    expected = [[format_open_rounded(a), format_open(a), format_open(a, grouping=False)] for a in amounts]
    assert script == expected

    # A fee that is not an amount shows as a dash, not as a wrong figure.
    page.unroute("**/v1/chat/completions")
    page.route("**/v1/chat/completions", _answer_with_fee("0.05"))
    page.get_by_label("Message").fill("refund my payment again")
    page.get_by_role("button", name="Send").click()
    expect(fee).to_have_text("—")
    expect(fee).not_to_have_attribute("title", re.compile("."))
