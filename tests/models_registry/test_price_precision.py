"""Issue #22, the leftover: a model's price and an answer's fee are exact ints of OPEN base units
(`rewards.fields.AmountField`), whatever their size. As plain `DecimalField`s, SQLite held a price above 2**63
as a REAL and Django read any price back to 15 significant digits, so 123456789012345678901234567 base units
came back as 123456789012346000000000000.

Checked on the default test database (SQLite here; `DATABASE_URL=postgres://...` runs the same on PostgreSQL):
the price typed in the owner's form, stored, shown on the card, sent and read on the REST API and `/v1/models`,
and charged for an answer (sync and queued settlement); and the migrations keep the values rows already had.
"""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from inference import services as inference_services
from inference.errors import OpenAIError
from inference.models import InferenceRecord
from models_registry import services as registry_services
from models_registry.forms import ModelSettingsForm
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards import selectors as rewards_selectors
from rewards import services as rewards_services
from rewards.amounts import UINT256_MAX, format_open

MODELS = "/api/v1/models/"
# More than 15 significant digits and above 2**64; exactly 0.05 OPEN; just above 2**64.
PRICES = [123456789012345678901234567, 5 * 10**16, 2**64 + 1]
IDS = ["27-digits", "0.05-open", "2**64+1"]


def typed(price: int) -> str:
    """The price as its owner types it: OPEN, with every decimal."""
    return format_open(price, grouping=False)


@pytest.fixture
def model(db, alice):
    """Alice's deployed classifier, free for now, its attribution index ready (so it may charge)."""
    base = BaseModel.objects.create(name="MiniLM", slug="minilm-tiny", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=alice, name="intents", base_model=base, task="text-classification")
    return ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Support intents", slug="intents", version_hash="e" * 64,
        task="text-classification", label_names=["billing", "shipping"], storage_prefix="models/" + "e" * 64,
        manifest={}, price_per_inference=0, deployed=True, attribution_status="ready")


@pytest.mark.parametrize("price", PRICES, ids=IDS)
def test_the_model_stores_the_price_exactly(model, price):
    ModelVersion.objects.filter(pk=model.pk).update(price_per_inference=price)
    stored = ModelVersion.objects.get(pk=model.pk).price_per_inference
    assert (stored, type(stored)) == (price, int)
    assert ModelVersion.objects.filter(pk=model.pk).values_list("price_per_inference", flat=True).get() == price


@pytest.mark.parametrize("price", PRICES, ids=IDS)
def test_the_owner_types_the_price_in_open_and_the_card_keeps_it_exactly(model, client, alice, charlie, price):
    form = ModelSettingsForm({"price_per_inference": typed(price)})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["price_per_inference"] == price

    client.force_login(alice)
    assert client.post(f"/models/{model.slug}/", {"price_per_inference": typed(price)}).status_code == 302
    assert ModelVersion.objects.get(pk=model.pk).price_per_inference == price
    # The owner's form shows the stored price again, every decimal: saving it unchanged changes nothing.
    assert f'value="{typed(price)}"' in client.get(f"/models/{model.slug}/").content.decode()

    client.force_login(charlie)
    card = client.get(f"/models/{model.slug}/").content.decode()
    assert f'<dd data-testid="price"><data value="{typed(price)}" title="{format_open(price)} OPEN">' in card


def test_a_price_past_any_amount_of_open_is_refused_on_the_form_and_nothing_changes(model, client, alice):
    too_much = typed(UINT256_MAX + 1)  # one base unit more than the largest amount of OPEN
    client.force_login(alice)
    response = client.post(f"/models/{model.slug}/", {"price_per_inference": too_much})
    assert response.status_code == 200
    page = response.content.decode()
    assert "The amount must be at most" in page and f'value="{too_much}"' in page
    assert ModelVersion.objects.get(pk=model.pk).price_per_inference == 0


@pytest.mark.parametrize("price", PRICES, ids=IDS)
def test_the_admin_lists_the_price_in_open_and_sorts_by_it_only_where_the_database_compares_numbers(
        model, client, staff, price):
    ModelVersion.objects.filter(pk=model.pk).update(price_per_inference=price)
    client.force_login(staff)
    listing = client.get("/admin/models_registry/modelversion/")
    assert listing.status_code == 200 and f"{format_open(price)} OPEN" in listing.content.decode()
    # On SQLite the column is text ("9" would sort after "10"): the price column is not sortable there.
    column = admin.site._registry[ModelVersion].price_per_inference_open
    assert hasattr(column, "admin_order_field") is (connection.vendor != "sqlite")
    change = client.get(f"/admin/models_registry/modelversion/{model.pk}/change/").content.decode()
    assert f'name="price_per_inference" value="{typed(price)}"' in change


@pytest.mark.parametrize("as_json_int", [False, True], ids=["digits", "json-int"])
@pytest.mark.parametrize("price", PRICES, ids=IDS)
def test_the_rest_api_and_v1_models_send_and_read_the_price_exactly(model, key_client, alice, charlie, price,
                                                                     as_json_int):
    url = f"{MODELS}{model.slug}/"
    patched = key_client(alice, "read", "train").patch(
        url, {"price_per_inference": price if as_json_int else str(price)}, format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["price_per_inference"], patched.json()["price_open"]) == (str(price), typed(price))
    assert ModelVersion.objects.get(pk=model.pk).price_per_inference == price

    reader = key_client(charlie, "read", "infer")
    detail = reader.get(url).json()
    assert (detail["price_per_inference"], detail["price_open"]) == (str(price), typed(price))
    [listed] = [m for m in reader.get(MODELS).json()["results"] if m["slug"] == model.slug]
    assert listed["price_per_inference"] == str(price)
    [served] = reader.get("/v1/models").json()["data"]
    assert served["lineage"]["price_per_inference"] == str(price)
    assert reader.get(f"/v1/models/{model.slug}").json()["lineage"]["price_per_inference"] == str(price)


def priced(model, owner, price):
    """The model priced through its owner's service (as the form and the API price it)."""
    return registry_services.model_version_update(version=model, actor=owner, price_per_inference=price)


@pytest.mark.parametrize("queued", [False, True], ids=["sync", "queued"])
@pytest.mark.parametrize("price", PRICES, ids=IDS)
def test_an_answer_debits_exactly_the_price(model, alice, charlie, staff, settings, django_capture_on_commit_callbacks,
                                            price, queued):
    settings.INFERENCE_RECEIPTS_ASYNC = queued
    model = priced(model, alice, price)
    rewards_services.credit_grant(actor=staff, user=charlie, amount=price + 7, reason="price precision tests")
    before = rewards_selectors.credit_balance(user=charlie)
    with django_capture_on_commit_callbacks(execute=True):
        inference = inference_services.inference_begin(user=charlie, api_key=None, endpoint="chat.completions",
                                                       model=model.slug)
        assert inference.fee == price
        settled = inference_services.inference_complete(inference=inference, input_text="where is my parcel?",
                                                        output="shipping", tokens_in=5, tokens_out=1, slot=None)
    assert settled.fee == price
    assert rewards_selectors.credit_balance(user=charlie) == before - price  # held at once, then booked
    rewards_services.fees_settle_pending()
    assert rewards_selectors.credit_balance(user=charlie) == before - price
    fee = rewards_selectors.fee_for(inference_id=inference.inference_id, user=charlie)
    assert (fee["status"], fee["fee"]) == ("settled", price)
    assert fee["protocol"] + fee["owner"] + sum(share["amount"] for share in fee["contributors"]) == price
    record = InferenceRecord.objects.get(pk=inference.inference_id)
    assert (record.status, record.fee) == ("succeeded", price)


def test_a_second_answer_the_credit_no_longer_covers_is_refused_uncharged(model, alice, charlie, staff):
    price = PRICES[0]
    model = priced(model, alice, price)
    rewards_services.credit_grant(actor=staff, user=charlie, reason="price precision tests",
                                  amount=price - 1 - rewards_selectors.credit_balance(user=charlie))
    with pytest.raises(OpenAIError) as short:
        inference_services.inference_begin(user=charlie, api_key=None, endpoint="chat.completions", model=model.slug)
    assert short.value.code == "insufficient_quota" and f"costs {format_open(price)} OPEN" in short.value.message
    assert rewards_selectors.credit_balance(user=charlie) == price - 1
    assert InferenceRecord.objects.get(user=charlie).fee == 0


# --- The migrations: rows stored before keep their values -------------------------------------------------------

# Exact below 2**63 even on SQLite, which held them as INTEGERs (the old field still read back 15 digits of
# 1234567890123456789 and 2**63 - 1); above it SQLite held a REAL, and what the old field showed is what is left.
STORED = [0, 5 * 10**16, 1234567890123456789, 2**63 - 1, 2**64 + 1, 123456789012345678901234567, 10**77]


def _exact_where_stored_exactly(value: int, shown_before: Decimal) -> int:
    if connection.vendor == "sqlite" and value >= 2**63:
        return int(shown_before)
    return value


@pytest.fixture
def rows_of(alice):
    """`rows_of(app)`: one row per value of STORED in the model whose amount column the app's migration alters,
    made now (amount 0). Returns (model name, field name, their pks)."""

    def make(app: str):
        if app == "inference":
            return "InferenceRecord", "fee", [
                InferenceRecord.objects.create(user=alice, endpoint="chat.completions").pk for _ in STORED]
        base = BaseModel.objects.create(name="MiniLM", slug="minilm-tiny", source_kind="local", source_ref="tiny",
                                        architecture="bert", task_types=["text-classification"])
        pks = []
        for number, _ in enumerate(STORED):
            job = FineTuneJob.objects.create(owner=alice, name=f"m{number}", base_model=base, task="text-classification")
            pks.append(ModelVersion.objects.create(
                job=job, owner=alice, base_model=base, name=f"m{number}", slug=f"m{number}",
                version_hash=f"{number:064d}", task="text-classification", storage_prefix=f"models/m{number}",
                manifest={}).pk)
        return "ModelVersion", "price_per_inference", pks

    return make


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("app", "before", "after"), [
    ("models_registry", "0001_initial", "0002_price_per_inference_exact_amount"),
    ("inference", "0002_inferencerecord_query_digest", "0003_inferencerecord_fee_exact_amount"),
], ids=["model-price", "inference-fee"])
def test_the_migration_keeps_the_amounts_rows_had(rows_of, app, before, after):
    model_name, field, pks = rows_of(app)
    executor = MigrationExecutor(connection)
    executor.migrate([(app, before)])
    try:
        old_model = executor.loader.project_state([(app, before)]).apps.get_model(app, model_name)
        for pk, value in zip(pks, STORED, strict=True):
            old_model.objects.filter(pk=pk).update(**{field: Decimal(value)})
        shown_before = [getattr(old_model.objects.get(pk=pk), field) for pk in pks]
        if connection.vendor == "sqlite":  # the bug itself: 19 digits stored, 15 read back
            assert shown_before[2] == Decimal("1234567890123460000") != STORED[2]

        executor = MigrationExecutor(connection)
        executor.migrate([(app, after)])
        new_model = {"ModelVersion": ModelVersion, "InferenceRecord": InferenceRecord}[model_name]
        migrated = [getattr(new_model.objects.get(pk=pk), field) for pk in pks]
        assert migrated == [_exact_where_stored_exactly(value, shown)
                            for value, shown in zip(STORED, shown_before, strict=True)]
        assert all(type(value) is int for value in migrated)
        # New amounts of any size are exact from now on.
        new_model.objects.filter(pk=pks[-1]).update(**{field: UINT256_MAX})
        assert getattr(new_model.objects.get(pk=pks[-1]), field) == UINT256_MAX
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
