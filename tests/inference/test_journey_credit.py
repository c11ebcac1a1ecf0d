"""Issue #22, items 1 and 5 on the serving side: a caller without credit is told where to add some (the
OpenAI API's 429 `insufficient_quota`, the native API's 402 and the playground link the deposit page), and
prices read in OPEN."""

import pytest

from models_registry.models import BaseModel, FineTuneJob, ModelVersion

OPEN = 10**18
PRICE = 5 * 10**16  # 0.05 OPEN


@pytest.fixture
def paid_model(db, alice):
    base = BaseModel.objects.create(name="Tiny", slug="tiny", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=alice, name="intents", base_model=base, task="text-classification")
    return ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Intents", slug="intents-paid", version_hash="c" * 64,
        task="text-classification", label_names=["billing", "shipping"], storage_prefix="models/" + "c" * 64,
        manifest={}, price_per_inference=PRICE, deployed=True)


def test_the_openai_429_links_the_deposit_page(paid_model, key_client, charlie):
    response = key_client(charlie, "infer").post("/v1/chat/completions", {
        "model": paid_model.slug, "messages": [{"role": "user", "content": "where is my parcel?"}]}, format="json")
    assert response.status_code == 429  # OpenAI's short-credit answer (issue #18, item 3)
    error = response.json()["error"]
    assert error["code"] == error["type"] == "insufficient_quota"
    assert "/rewards/deposit/" in error["message"]
    assert "costs 0.05 OPEN" in error["message"] and "your credit is 0 OPEN" in error["message"]
    assert "base units" not in error["message"]


def test_the_native_api_402_detail_links_the_deposit_page(paid_model, key_client, charlie):
    response = key_client(charlie, "infer").post("/api/v1/inferences/", {"model": paid_model.slug, "input": "refund"},
                                             format="json")
    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credit" and "/rewards/deposit/" in response.json()["detail"]


def test_the_playground_shows_prices_in_open_and_links_the_deposit_page(paid_model, client, charlie):
    client.force_login(charlie)
    page = client.get("/playground/").content.decode()
    assert "0.05 OPEN" in page and "base units" not in page
    assert 'data-deposit-url="/rewards/deposit/"' in page  # the short-credit (429) message in the page links it
    assert 'href="/rewards/deposit/"' in page


def test_the_models_api_labels_prices_as_base_units(paid_model, key_client, charlie):
    [model] = key_client(charlie, "infer").get("/v1/models").json()["data"]
    assert model["lineage"]["price_per_inference"] == str(PRICE)
    assert model["lineage"]["price_unit"] == "OPEN base units (10^-18 OPEN)"
