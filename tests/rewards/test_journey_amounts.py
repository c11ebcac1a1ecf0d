"""Issue #22, item 5: people type and read OPEN with decimals ("0.05"), the database keeps exact base units.
One form field (`rewards.amounts.OpenAmountField`) and one template filter (`|open`) do it everywhere."""

import pytest
from django.template import Context, Template

from models_registry import forms as registry_forms
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards import ledger
from rewards.amounts import OpenAmountField, parse_open
from rewards.models import AccountKind, CreditGrant

OPEN = 10**18


@pytest.fixture
def model(db, alice):
    base = BaseModel.objects.create(name="Tiny", slug="tiny", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=alice, name="intents", base_model=base, task="text-classification")
    return ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Intents", slug="intents", version_hash="d" * 64,
        task="text-classification", storage_prefix="models/" + "d" * 64, manifest={}, price_per_inference=0)


@pytest.mark.parametrize(("typed", "base_units"), [
    ("0.05", 5 * 10**16), ("1", OPEN), (" 2.5 OPEN ", 5 * OPEN // 2), ("1,000.25", 1000 * OPEN + OPEN // 4),
    ("0.000000000000000001", 1), ("0", 0), (".5", OPEN // 2), ("7.", 7 * OPEN),
])
def test_the_form_field_takes_open_with_decimals_and_cleans_to_base_units(typed, base_units):
    assert OpenAmountField().clean(typed) == base_units


@pytest.mark.parametrize(("typed", "message"), [
    ("0.0000000000000000001", "at most 18 decimals"),
    ("-0.05", "cannot be negative"),
    ("abc", "Enter an amount of OPEN"),
    ("1e-2", "Enter an amount of OPEN"),
    ("0,05", "Enter an amount of OPEN"),
])
def test_the_form_field_refuses_what_is_not_an_amount_with_a_clear_message(typed, message):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        OpenAmountField().clean(typed)
    assert message in " ".join(refused.value.messages)


def test_the_model_price_form_accepts_0_05_and_stores_base_units():
    form = registry_forms.ModelSettingsForm({"price_per_inference": "0.05"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["price_per_inference"] == 5 * 10**16
    refused = registry_forms.ModelSettingsForm({"price_per_inference": "0.0000000000000000001"})
    assert not refused.is_valid() and "at most 18 decimals" in str(refused.errors)
    negative = registry_forms.ModelSettingsForm({"price_per_inference": "-1"})
    assert not negative.is_valid() and "cannot be negative" in str(negative.errors)


def test_the_owner_sets_0_05_on_the_model_card_and_it_reads_0_05_open(model, client, alice):
    client.force_login(alice)
    response = client.post(f"/models/{model.slug}/", {"price_per_inference": "0.05"})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.price_per_inference == 5 * 10**16
    page = client.get(f"/models/{model.slug}/").content.decode()
    assert "0.05 OPEN" in page and "base units" not in page
    assert 'value="0.05"' in page  # the form shows what was typed, not 50000000000000000


def test_the_template_filter_shows_open(db):
    rendered = Template("{% load open_amounts %}{{ a|open }} / {{ b|open }} / {{ c|open }}").render(
        Context({"a": 5 * 10**16, "b": 1234 * OPEN, "c": None}))
    assert rendered == "0.05 OPEN / 1,234 OPEN / —"
    assert parse_open("1,234") == 1234 * OPEN


def test_the_admin_takes_and_shows_open(model, client, staff, alice):
    client.force_login(staff)
    response = client.post("/admin/rewards/creditgrant/add/", {"user": alice.pk, "amount": "2.5",
                                                                "reason": "support ticket 22"})
    assert response.status_code == 302
    assert ledger.balance(kind=AccountKind.CREDIT, user=alice) == 5 * OPEN // 2
    listing = client.get("/admin/rewards/creditgrant/").content.decode()
    assert "2.5 OPEN" in listing and str(5 * OPEN // 2) not in listing
    accounts = client.get("/admin/rewards/ledgeraccount/").content.decode()
    assert "2.5 OPEN" in accounts and str(5 * OPEN // 2) not in accounts
    grant = CreditGrant.objects.get(user=alice)
    for url in (f"/admin/rewards/creditgrant/{grant.pk}/change/",
                f"/admin/rewards/ledgertransaction/{grant.transaction_id}/change/"):
        detail = client.get(url).content.decode()  # read-only pages: amounts in OPEN too
        assert "2.5 OPEN" in detail and str(5 * OPEN // 2) not in detail, url
    change = client.get(f"/admin/models_registry/modelversion/{model.pk}/change/").content.decode()
    assert 'name="price_per_inference"' in change and 'value="0"' in change
    form = {"job": model.job_id, "owner": model.owner_id, "base_model": model.base_model_id, "name": model.name,
            "slug": model.slug, "task": model.task, "label_names": "[]", "storage_prefix": model.storage_prefix,
            "price_per_inference": "0.05", "attribution_status": model.attribution_status, "description": ""}
    response = client.post(f"/admin/models_registry/modelversion/{model.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    model.refresh_from_db()
    assert model.price_per_inference == 5 * 10**16
    assert "0.05 OPEN" in client.get("/admin/models_registry/modelversion/").content.decode()
