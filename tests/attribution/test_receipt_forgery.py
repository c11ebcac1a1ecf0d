"""Issue #16, receipt forgery: a receipt stored under an inference id must never decide that inference's
fee unless it is that inference's own (same model version, requester and query).

On the module's real MiniLM LoRA model version (tests/attribution/conftest.py, built once per module): the
public API refuses a caller-chosen inference id; `receipt_create` returns a stored receipt only when it is
the call's own, on the first look-up and on the concurrent-insert path; and an inference served (sync or
queued) after someone stored a receipt under its id is settled without that receipt, through the real
inference, attribution and rewards services."""

import logging
import uuid

import pytest

from attribution import services
from attribution.models import AttributionReceipt
from attribution.selectors import index_fallback_shares
from attribution.services import receipts  # receipt_create runs receipts._attribute: patched there
from datanets.models import Record
from inference import integrations
from inference import services as inference_services
from inference.models import InferenceRecord
from models_registry import services as model_services
from models_registry.models import FineTuneJob, ModelVersion
from models_registry.selectors import model_version_training_rows
from rewards import services as rewards_services
from rewards.models import PendingFee, Settlement, SettlementShare, ShareRole

pytestmark = pytest.mark.django_db

PPM = 1_000_000
PRICE = 10**15
QUESTION = "I was charged $49 twice for my team plan"
KEPT = ("receipt_id", "model_version_id", "model_version_hash", "requester_id", "inference_id", "input_text",
        "output", "query_digest", "contributor_shares_ppm", "contributor_rows", "receipt_digest", "payload")


def stored(receipt: AttributionReceipt) -> dict:
    receipt = AttributionReceipt.objects.get(pk=receipt.pk)
    return {name: getattr(receipt, name) for name in KEPT}


def other_version(world) -> ModelVersion:
    """A second registered model version (a copy of the module's, under its own job, slug and hash)."""
    job = FineTuneJob.objects.get(pk=world.model.job_id)
    job.pk = None
    job.save()
    version = ModelVersion.objects.get(pk=world.model.pk)
    version.pk, version.job = None, job
    version.slug, version.version_hash = f"{world.model.slug}-copy", "ab" * 32
    version.save()
    return version


# --- (a) The public API never ties a receipt to an inference ------------------------------------------------

def test_the_api_refuses_a_caller_chosen_inference_id(world, key_client):
    client = key_client(world.alice, "infer")
    victim = str(uuid.uuid4())
    body = {"model": world.model.slug, "input": QUESTION, "output": "billing"}

    refused = client.post("/api/v1/attributions/", {**body, "inference_id": victim}, format="json")
    assert refused.status_code == 400, refused.content
    error = refused.json()
    assert error["code"] == "invalid" and list(error["fields"]) == ["inference_id"]
    assert "assigned by the platform" in error["fields"]["inference_id"][0]
    assert not AttributionReceipt.objects.filter(inference_id=victim).exists()
    # An empty or null one is still the caller choosing the field: refused the same way.
    assert client.post("/api/v1/attributions/", {**body, "inference_id": None}, format="json").status_code == 400

    created = client.post("/api/v1/attributions/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["inference_id"] is None
    assert AttributionReceipt.objects.get(receipt_id=created.json()["receipt_id"]).inference_id is None


# --- (b), (c) receipt_create under an inference id ----------------------------------------------------------

def test_a_stored_receipt_for_another_output_requester_or_model_is_refused_and_left_as_it_is(world):
    inference_id = str(uuid.uuid4())
    original = services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                       inference_id=inference_id, requester=world.alice)
    before = stored(original)
    assert before["inference_id"] == inference_id and before["requester_id"] == world.alice.pk

    attempts = {
        "query": dict(model_version=world.model, input_text=QUESTION, output="shipping", requester=world.alice),
        "requester": dict(model_version=world.model, input_text=QUESTION, output="billing", requester=world.bob),
        "model version": dict(model_version=other_version(world), input_text=QUESTION, output="billing",
                              requester=world.alice),
    }
    for differs, call in attempts.items():
        with pytest.raises(services.ReceiptMismatch, match=f"different {differs};") as raised:
            services.receipt_create(inference_id=inference_id, **call)
        assert inference_id in str(raised.value)
        assert stored(original) == before, differs  # neither returned nor overwritten
    # A different input is a different query too; an anonymous caller is a different requester.
    with pytest.raises(services.ReceiptMismatch, match="different query;"):
        services.receipt_create(model_version=world.model, input_text=QUESTION + "!", output="billing",
                                inference_id=inference_id, requester=world.alice)
    with pytest.raises(services.ReceiptMismatch, match="different requester;"):
        services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                inference_id=inference_id, requester=None)
    assert AttributionReceipt.objects.filter(inference_id=inference_id).count() == 1
    assert stored(original) == before


def test_the_same_call_again_returns_the_same_receipt(world):
    inference_id = str(uuid.uuid4())
    first = services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                    inference_id=inference_id, requester=world.alice)
    count = AttributionReceipt.objects.count()
    again = services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                    inference_id=inference_id, requester=world.alice)
    assert again.pk == first.pk and again.receipt_digest == first.receipt_digest
    assert AttributionReceipt.objects.count() == count  # nothing new was stored


def test_a_concurrent_insert_under_the_same_id_is_returned_only_when_it_is_the_same_receipt(world, monkeypatch):
    """The IntegrityError path: another request stores a receipt under the id while this one attributes."""
    real_attribute = receipts._attribute

    def race(rival: AttributionReceipt, inference_id: str):
        def attribute(*args, **kwargs):
            result = real_attribute(*args, **kwargs)
            AttributionReceipt.objects.filter(pk=rival.pk).update(inference_id=inference_id)  # it wins the insert
            return result
        monkeypatch.setattr(receipts, "_attribute", attribute)

    # The rival was made for someone else's query: refused, and it stays what it was.
    inference_id = str(uuid.uuid4())
    rival = services.receipt_create(model_version=world.model, input_text=QUESTION, output="shipping",
                                    requester=world.bob)
    race(rival, inference_id)
    with pytest.raises(services.ReceiptMismatch, match="different requester and query;"):
        services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                inference_id=inference_id, requester=world.alice)
    after = AttributionReceipt.objects.get(inference_id=inference_id)
    assert after.pk == rival.pk and after.output == "shipping" and after.requester_id == world.bob.pk

    # The rival is the same request (a retry that got there first): it is the answer.
    inference_id = str(uuid.uuid4())
    twin = services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                   requester=world.alice)
    race(twin, inference_id)
    got = services.receipt_create(model_version=world.model, input_text=QUESTION, output="billing",
                                  inference_id=inference_id, requester=world.alice)
    assert got.pk == twin.pk
    assert AttributionReceipt.objects.filter(inference_id=inference_id).count() == 1


# --- (d) Settlement never splits a fee by a receipt that is not the inference's -----------------------------

@pytest.fixture
def paid_model(world):
    """The module's model version, priced and deployed, and a payer with credit."""
    model_services.model_version_update(version=world.model, actor=world.alice, price_per_inference=PRICE)
    model = model_services.model_version_set_deployed(version=world.model, actor=world.alice, deployed=True)
    payer = world.others[0]
    rewards_services.credit_grant(actor=None, user=payer, amount=10 * PRICE, reason="receipt forgery tests")
    return model, payer


def training_row(world, contributor):
    """A correctly labelled row `contributor` gave, fed back as the question: its receipt names contributors."""
    records = Record.objects.filter(datanet=world.datanet, contributor=contributor).order_by("pk")
    record = next(record for record in records if record.row_uid not in world.flipped)
    return record.fields["text"], record.fields["label"]


def contributor_shares(inference_id: str) -> dict[int, int]:
    settlement = Settlement.objects.get(inference_id=inference_id)
    return {share.user_id: share.ppm for share in settlement.shares.filter(role=ShareRole.CONTRIBUTOR)}


def forge_by_request(world, *, model, inference_id, text, output, answered):
    """What the attribution API allowed before: Bob names the victim's id; even with the very question and
    answer the victim's inference had (guessed), the receipt is his request, not the inference."""
    return services.receipt_create(model_version=model, input_text=text, output=answered,
                                   inference_id=inference_id, requester=world.bob)


def forge_by_row(world, *, model, inference_id, text, output, answered):
    """A receipt row that names Bob alone, for another answer to the same question."""
    return AttributionReceipt.objects.create(
        model_version=model, model_version_hash=model.version_hash, index_hash="0" * 64, method={},
        inference_id=inference_id, requester=world.bob, input_text=text, output=output,
        query_digest=services.query_digest(text, output), top_rows=[], contributor_scores={str(world.bob.pk): 1.0},
        contributor_shares_ppm={str(world.bob.pk): PPM}, contributor_rows={str(world.bob.pk): ["forged"]},
        payload={"forged": True}, receipt_digest="f" * 64, latency_ms=0.0)


@pytest.mark.parametrize("forge", [forge_by_request, forge_by_row], ids=["by-request", "by-row"])
@pytest.mark.parametrize("queued", [True, False], ids=["async", "sync"])
def test_a_receipt_forged_under_an_inference_id_does_not_split_its_fee(
        world, paid_model, settings, django_capture_on_commit_callbacks, caplog, queued, forge):
    settings.INFERENCE_RECEIPTS_ASYNC = queued
    model, payer = paid_model
    text, label = training_row(world, world.alice)
    wrong = "shipping" if label == "billing" else "billing"

    def serve(*, forged_for=None):
        with django_capture_on_commit_callbacks(execute=True):
            inference = inference_services.inference_begin(user=payer, api_key=None, endpoint="chat.completions",
                                                           model=model.slug)
            if forged_for is not None and not queued:  # before the answer is settled in the request
                forged_for.append(forge(world, model=model, inference_id=inference.inference_id, text=text,
                                        output=wrong, answered=label))
            settled = inference_services.inference_complete(inference=inference, input_text=text, output=label,
                                                            tokens_in=7, tokens_out=1, slot=None)
            if forged_for is not None and queued:  # the id is out; the queued settlement has not run yet
                assert settled.receipt_status == "queued"
                forged_for.append(forge(world, model=model, inference_id=inference.inference_id, text=text,
                                        output=wrong, answered=label))
        rewards_services.fees_settle_pending()
        return settled, InferenceRecord.objects.get(pk=inference.inference_id)

    # An honest inference: its own receipt splits the fee (so the check below is not vacuous).
    honest, honest_record = serve()
    receipt = AttributionReceipt.objects.get(receipt_id=honest_record.receipt_id)
    assert receipt.inference_id == honest.inference_id and receipt.requester_id == payer.pk
    assert honest_record.query_digest == receipt.query_digest == services.query_digest(text, label)
    assert receipt.contributor_shares_ppm, receipt.empty_reason
    assert contributor_shares(honest.inference_id) == {int(k): v for k, v in receipt.contributor_shares_ppm.items()}

    # Bob stores a receipt under the next inference's id before it is settled.
    forged = []
    caplog.set_level(logging.WARNING, logger="inference")
    victim, record = serve(forged_for=forged)
    forged = forged[0]
    before = stored(forged)
    assert record.receipt_id == "" and record.fee == PRICE and record.finished_at is not None
    assert record.query_digest == services.query_digest(text, label)  # what was really asked and answered
    if not queued:
        assert victim.receipt_status == "unavailable" and victim.contributors == []
    settlement = Settlement.objects.get(inference_id=victim.inference_id)
    assert settlement.receipt_id == "" and settlement.fee == PRICE and settlement.payer_id == payer.pk
    # Without its own receipt the contributors' part goes to the data that trained the model (the policy's
    # default fallback), by the value split recorded when the model's index was built: never by the forged
    # receipt. Bob, a contributor too, gets his rows' part of that split and no more.
    forged_shares = {int(k): v for k, v in forged.contributor_shares_ppm.items()}
    recorded = index_fallback_shares(version_hashes=[settlement.model_version_hash])[settlement.model_version_hash]
    training = model_version_training_rows(version_hashes=[settlement.model_version_hash])[settlement.model_version_hash]
    paid = contributor_shares(victim.inference_id)
    assert settlement.fallback_used and settlement.contributors_amount > 0
    assert forged_shares and set(paid) == set(recorded) <= set(training)
    assert paid == recorded
    # The forged receipt's split can equal the recorded one (a receipt whose attribution named nobody pays that
    # same split), so what shows the forged receipt was not used is that nothing of it reached the books: no
    # share names the rows it listed.
    assert forged.contributor_rows and all(
        share.rows == [] for share in SettlementShare.objects.filter(settlement=settlement, role=ShareRole.CONTRIBUTOR))
    assert stored(forged) == before  # the forged receipt itself is left for review, not rewritten
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "inference"]
    differs = "different requester;" if forge is forge_by_request else "different requester and query;"
    assert any(victim.inference_id in message and differs in message for message in warnings), warnings


def test_a_queued_settlement_for_another_answer_than_the_recorded_one_gets_no_receipt(
        world, paid_model, settings, django_capture_on_commit_callbacks):
    """The record's digest is the reference: a queued settlement whose input/output differ is settled without
    the receipt made from them (which is then not the inference's)."""
    settings.INFERENCE_RECEIPTS_ASYNC = True
    model, payer = paid_model
    text, label = training_row(world, world.alice)
    with django_capture_on_commit_callbacks(execute=False):
        inference = inference_services.inference_begin(user=payer, api_key=None, endpoint="chat.completions",
                                                       model=model.slug)
        inference_services.inference_complete(inference=inference, input_text=text, output=label, tokens_in=7,
                                              tokens_out=1, slot=None)
    record = inference_services.inference_settle_queued(inference_id=inference.inference_id, input_text=text,
                                                        output="shipping" if label == "billing" else "billing")
    assert record.receipt_id == "" and record.finished_at is not None and record.fee == PRICE
    pending = PendingFee.objects.get(inference_id=inference.inference_id)
    assert pending.receipt_id == "" and pending.contributor_shares == {}


def test_fee_settle_drops_a_receipt_made_for_another_payer_model_or_query(world, paid_model):
    """The last guard, in the integration with rewards: only the inference's own receipt carries shares."""
    model, payer = paid_model
    digest = services.query_digest(QUESTION, "billing")
    own = integrations.Receipt(receipt_id="r-own", url="/r/own", model_version_hash=model.version_hash,
                               requester_id=payer.pk, query_digest=digest, shares_ppm={world.alice.pk: PPM},
                               rows={str(world.alice.pk): ["row-a"]})
    others = {
        "requester": integrations.Receipt(**{**own.__dict__, "receipt_id": "r-1", "requester_id": world.bob.pk}),
        "model": integrations.Receipt(**{**own.__dict__, "receipt_id": "r-2", "model_version_hash": "ab" * 32}),
        "query": integrations.Receipt(**{**own.__dict__, "receipt_id": "r-3",
                                         "query_digest": services.query_digest(QUESTION, "shipping")}),
    }
    for n, receipt in enumerate([own, *others.values()]):
        integrations.fee_settle(inference_id=f"fee-guard-{n}", payer=payer, model_version=model, fee=PRICE,
                                receipt=receipt, query_digest=digest)
    kept = PendingFee.objects.get(inference_id="fee-guard-0")
    assert kept.receipt_id == "r-own" and kept.contributor_shares == {str(world.alice.pk): PPM}
    for n in (1, 2, 3):
        dropped = PendingFee.objects.get(inference_id=f"fee-guard-{n}")
        assert dropped.receipt_id == "" and dropped.contributor_shares == {}


# --- (e) A queued answer holds its fee when it is given; only the split waits for the receipt ---------------

def _answer_queued(model, payer, text, label):
    inference = inference_services.inference_begin(user=payer, api_key=None, endpoint="chat.completions",
                                                   model=model.slug)
    return inference_services.inference_complete(inference=inference, input_text=text, output=label, tokens_in=7,
                                                 tokens_out=1, slot=None)


def test_queued_answers_cannot_outrun_the_payers_credit_and_pay_the_price_they_were_given_at(
        world, paid_model, settings, django_capture_on_commit_callbacks):
    from inference.errors import OpenAIError
    from rewards import ledger

    settings.INFERENCE_RECEIPTS_ASYNC = True
    model, payer = paid_model  # 10 answers' worth of credit
    text, label = training_row(world, world.alice)
    # Eleven answers asked before any attribution worker runs (their tasks are not executed yet).
    with django_capture_on_commit_callbacks(execute=False) as queued:
        given = [_answer_queued(model, payer, text, label) for _ in range(10)]
        with pytest.raises(OpenAIError) as refused:
            _answer_queued(model, payer, text, label)
    assert refused.value.status == 429 and refused.value.code == "insufficient_quota"
    assert ledger.credit_available(user_id=payer.pk) == 0  # all ten are held now, not when the worker runs
    assert PendingFee.objects.filter(awaiting_receipt=True).count() == 10
    assert rewards_services.fees_settle_pending() == 0  # nothing is booked before its receipt arrives
    # The owner raises the price before the receipts are computed: the answers were given at the old one.
    model_services.model_version_update(version=model, actor=world.alice, price_per_inference=3 * PRICE)
    for callback in queued:
        callback()
    rewards_services.fees_settle_pending()
    settled = Settlement.objects.filter(inference_id__in=[g.inference_id for g in given])
    assert settled.count() == 10 and {s.fee for s in settled} == {PRICE}
    assert all(s.receipt_id for s in settled) and all(s.contributors_amount > 0 for s in settled)
    assert ledger.ledger_check().ok


def test_a_fee_whose_receipt_never_comes_is_settled_without_one_after_the_wait(
        world, paid_model, settings, django_capture_on_commit_callbacks):
    settings.INFERENCE_RECEIPTS_ASYNC = True
    model, payer = paid_model
    text, label = training_row(world, world.alice)
    with django_capture_on_commit_callbacks(execute=False):  # the attribution task is lost
        answer = _answer_queued(model, payer, text, label)
    assert rewards_services.fees_settle_pending() == 0
    assert rewards_services.fees_release_unreceipted(older_than_s=0) == 1
    rewards_services.fees_settle_pending()
    settlement = Settlement.objects.get(inference_id=answer.inference_id)
    # No receipt: the contributors' part went to the model's training rows (the default fallback), not the owner.
    assert settlement.fee == PRICE and settlement.receipt_id == "" and settlement.fallback_used
    assert settlement.contributors_amount > 0
    # The task arrives late after all: the fee is settled once, by the first booking.
    record = inference_services.inference_settle_queued(inference_id=answer.inference_id, input_text=text,
                                                        output=label)
    assert record.finished_at is not None
    assert Settlement.objects.filter(inference_id=answer.inference_id).count() == 1


def test_a_reserved_receipt_page_says_it_is_being_computed_until_the_worker_stores_it(
        world, paid_model, settings, django_capture_on_commit_callbacks, client, key_client):
    settings.INFERENCE_RECEIPTS_ASYNC = True
    model, payer = paid_model
    text, label = training_row(world, world.alice)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        answer = _answer_queued(model, payer, text, label)
    page = client.get(answer.receipt_url)
    assert page.status_code == 202 and "Receipt being computed" in page.content.decode()
    assert client.get("/attribution/receipts/not-a-reserved-id/").status_code == 404
    api = key_client(world.others[1], "read")  # receipts are capability links: anyone holding the id
    pending = api.get(f"/api/v1/attributions/{answer.receipt_id}/")
    assert pending.status_code == 202 and pending.json()["code"] == "receipt_pending"
    assert pending["Retry-After"] == "2"
    assert api.get("/api/v1/attributions/not-a-reserved-id/").status_code == 404
    for callback in queued:
        callback()
    page = client.get(answer.receipt_url)
    assert page.status_code == 200 and "Receipt being computed" not in page.content.decode()
    stored = api.get(f"/api/v1/attributions/{answer.receipt_id}/")
    assert stored.status_code == 200 and stored.json()["receipt_id"] == answer.receipt_id
