"""Model deployment growth and inference utilisation from a real fine-tune (MiniLM, CPU), its deployment and
answers recorded and charged through the serving services."""

import pytest
from django.utils import timezone

from inference import services as inference_services
from inference.errors import OpenAIError
from insights import services
from models_registry import services as registry_services
from rewards import selectors as rewards_selectors
from rewards import services as rewards_services

FAST = {"epochs": 4, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}
PRICE = 10**15
OPEN = 10**18


def test_model_growth_and_inference_utilisation(alice, bob, charlie, staff, publish, intent_rows, api_key_for, fact,
                                                client, django_capture_on_commit_callbacks):
    datanet_version = publish(alice, intent_rows(), contributor=bob)
    with django_capture_on_commit_callbacks(execute=True):
        job = registry_services.fine_tune_create(owner=alice, name="Support intents", datanet_versions=[datanet_version],
                                                 base_model=registry_services.base_model_ensure_default(), **FAST)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    model = registry_services.model_version_update(version=job.model_version, actor=alice, price_per_inference=PRICE)
    model = registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    rewards_services.credit_grant(actor=staff, user=charlie, amount=10 * PRICE, reason="tests")
    key, _ = api_key_for(charlie, "infer")
    for text, label in (("I was charged twice please help", "billing"), ("where is my parcel please", "shipping")):
        with django_capture_on_commit_callbacks(execute=True):
            inference = inference_services.inference_begin(user=charlie, api_key=key, endpoint="chat.completions",
                                                           model=model.slug)
            inference_services.inference_complete(inference=inference, input_text=text, output=label, tokens_in=7,
                                                  tokens_out=0, slot=1)
    with pytest.raises(OpenAIError):
        inference_services.inference_begin(user=charlie, api_key=key, endpoint="chat.completions", model="nope")
    # Fees are booked in batches (a run is queued at most once a second), so book what is still pending:
    # the dashboard counts settled fees only.
    rewards_services.fees_settle_pending()

    services.summaries_refresh()
    day = timezone.now().date()
    assert fact("models.finetunes_launched", day) == 1
    assert fact("models.finetunes_succeeded", day) == 1
    assert fact("models.finetunes_failed", day) is None
    assert fact("models.versions_registered", day) == 1
    assert fact("models.versions_deployed", day) == 1
    assert fact("models.deployed_total", day) == 1
    assert fact("infer.requests", day) == 3
    assert fact("infer.requests_failed", day) == 1
    assert fact("infer.requests", day, "model", model.version_hash) == 2
    assert fact("infer.tokens_in", day, "model", model.version_hash) == 14
    p50, p99 = fact("infer.latency_p50_ms", day, "model", model.version_hash), fact("infer.latency_p99_ms", day)
    assert p50 > 0 and p99 >= p50
    assert fact("rewards.settlements", day, "model", model.version_hash) == 2
    assert fact("rewards.fees", day, "model", model.version_hash) == pytest.approx(2 * PRICE / OPEN)
    split = [fact(f"rewards.to_{part}", day, "model", model.version_hash) or 0
             for part in ("contributors", "owners", "protocol")]
    assert sum(split) == pytest.approx(2 * PRICE / OPEN)
    # Bob's rows trained the model: what the ledger says he earned is what the dashboard counts for him.
    bob_earned = rewards_selectors.earnings_for(user=bob)["totals"]["earned"] / OPEN
    assert (fact("rewards.earned", day, "user", bob.pk) or 0) == pytest.approx(bob_earned)
    assert bob_earned == pytest.approx(split[0])

    page = client.get(f"/insights/models/{model.slug}/")
    assert page.status_code == 200
    assert page.content.decode().count("<canvas") >= 4
    overview = client.get("/api/v1/insights/").json()
    assert overview["models"][0] == {"slug": model.slug, "name": model.name, "total": 2.0,
                                     "url": f"/insights/models/{model.slug}/"}

    # Undeploying lowers "serving" and keeps the day's deployment in the growth series.
    registry_services.model_version_set_deployed(version=model, actor=alice, deployed=False)
    services.summaries_refresh()
    assert fact("models.deployed_total", day) == 0
    assert fact("models.versions_deployed", day) == 1
    assert client.get(f"/insights/models/{model.slug}/").status_code == 404  # not deployed: private to its owner
    client.force_login(alice)
    assert client.get(f"/insights/models/{model.slug}/").status_code == 200
