"""Proof of Attribution on a real fine-tuned MiniLM LoRA model version (built once: see conftest.py):
index build through the registration signal, receipts, reproducibility, tampering, API, pages,
failed builds and mislabeled flags."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.storage import default_storage
from django.urls import reverse

from accounts.models import AuditEvent
from attribution import selectors, services
from attribution.engine.index import AttributionIndex as EngineIndex
from attribution.models import AttributionIndex, AttributionReceipt, IndexState, ValuationReport
from attribution.services import builds  # index_build runs builds._build: patched there
from datanets import selectors as datanet_selectors
from models_registry.models import FineTuneJob, ModelVersion
from models_registry.training import load_trained, predict_labels

pytestmark = pytest.mark.django_db

PPM = 1_000_000


def index_of(world) -> AttributionIndex:
    return AttributionIndex.objects.get(model_version=world.model)


def index_dir(world) -> Path:
    return Path(default_storage.path(f"{index_of(world).storage_prefix}/manifest.json")).parent


@pytest.fixture(scope="module")
def well_predicted(world):
    """Training rows (uid, fields) the model labels as their own label, outside near-duplicate clusters."""
    from models_registry.services import model_version_local_dir

    content = world.model.manifest["content"]
    train = content["data"]["train_row_ids"]
    clustered = set(world.version.manifest["meta"]["near_duplicate_clusters"])
    clustered |= {f"{root}" for root in world.version.manifest["meta"]["near_duplicate_clusters"].values()}
    records = datanet_selectors.records_by_uid(uids=train)
    candidates = [uid for uid in train if uid[1:] not in clustered and uid not in world.flipped]
    loaded = load_trained(model_version_local_dir(version=world.model))
    texts = [records[uid].fields["text"] for uid in candidates]
    predicted = predict_labels(loaded.model, loaded.tokenizer, texts, max_length=32)
    return [(uid, records[uid]) for uid, label in zip(candidates, predicted) if label == records[uid].fields["label"]]


def test_registration_builds_a_ready_index_with_a_verified_hash(world):
    index = index_of(world)
    assert index.state == IndexState.READY, index.error
    world.model.refresh_from_db()
    assert world.model.attribution_status == "ready"
    assert len(index.index_hash) == 64 and index.built_at and index.build_seconds > 0
    data = world.model.manifest["content"]["data"]
    assert index.row_count == len(data["train_row_ids"]) and index.contributor_count == 6
    engine = EngineIndex(index_dir(world))
    report = engine.verify(expected_index_hash=index.index_hash)
    assert report.ok, report.problems
    # Rows are indexed in the last epoch's order, each with the contributor the manifest names.
    assert engine.row_ids == data["epoch_row_ids"][-1]
    assert engine.row_contributor_ids == [data["row_contributors"][r] for r in engine.row_ids]
    assert engine.manifest["model_hash"] == world.model.version_hash
    assert index.method["curvature"] == "fisher" and index.method["damping_ratio"] == 0.01 and index.k == 1024
    assert index.method["damping_rule"] == "weighted_mean_eigenvalue"
    # The credit structure the share policy uses: groups, the measured null on the eval split, duplicates.
    credit = index.method["credit"]
    assert credit["groups"] >= 2 and credit["null_source"] in ("eval", "eval+train") and credit["null_queries"] >= 64
    assert credit["fallback_basis"] == "valuation"
    # The empty-receipt split is kept on the record by user id, for fees that get no receipt at all.
    recorded = engine.fallback_shares().shares_ppm
    assert index.fallback_basis == "valuation"
    assert index.fallback_shares_ppm == {uid: ppm for uid, ppm in recorded.items() if ppm > 0}
    assert sum(index.fallback_shares_ppm.values()) == PPM and len(index.fallback_shares_ppm) >= 2
    actions = set(AuditEvent.objects.filter(object_id=str(index.pk)).values_list("action", flat=True))
    assert {"attribution.index_queue", "attribution.index_build_start", "attribution.index_ready"} <= actions
    # Idempotent: a redelivered task finds it ready and builds nothing.
    again = services.index_build(model_version_id=world.model.pk)
    assert again.index_hash == index.index_hash and again.attempts == index.attempts == 1


def test_a_training_row_fed_back_ranks_itself_first(world, well_predicted):
    uid, record = well_predicted[0]
    receipt = services.receipt_create(model_version=world.model, input_text=record.fields["text"],
                                      output=record.fields["label"])
    top = receipt.top_rows[0]["row_id"]
    same_text = {u for u, r in datanet_selectors.records_by_uid(uids=[top]).items() if r.fields["text"] == record.fields["text"]}
    assert top == uid or same_text
    assert receipt.top_rows[0]["score"] > 0
    assert len(receipt.top_rows) == 10


def test_an_exact_copy_of_one_contributors_row_earns_the_most_credit_of_any_row(world, well_predicted):
    """Fed back a training row, the receipt pays that row more than any other row, and its contributor.
    (Contributors are paid the sum of their rows: one with many rows of the same kind can out-earn the
    owner of the single matching row, and should, since removing all of theirs would matter more.)"""
    charlie = str(world.charlie.pk)
    engine = EngineIndex(index_dir(world))
    weight = dict(zip(engine.row_ids, engine.credit().row_credit.tolist()))
    # Charlie's row that earns most on its own account: first of its kind (first come keeps the credit) and
    # worth the most on the held-out split.
    uid, record = max(((u, r) for u, r in well_predicted if str(r.contributor_id) == charlie), key=lambda p: weight[p[0]])
    assert weight[uid] > 0
    receipt = services.receipt_create(model_version=world.model, input_text=record.fields["text"],
                                      output=record.fields["label"], inference_id="inf-copy-1")
    shares = receipt.contributor_shares_ppm
    assert sum(shares.values()) == PPM and receipt.payload["basis"] == "attribution"
    paid = [(row["credit"], row["row_id"], c) for c, rows in receipt.payload["paid_rows"].items() for row in rows]
    if weight[uid] >= 0.99:  # a row with full weight earns the most of any row on its own copy
        assert max(paid)[1:] == (uid, charlie)
    assert shares[charlie] >= 0.1 * PPM
    assert receipt.contributor_rows[charlie][0] == uid  # the row itself is what earned Charlie's share
    assert set(receipt.contributor_rows) <= set(shares)
    # Idempotent per inference id, for the same query only (issue #16: test_receipt_forgery.py).
    again = services.receipt_create(model_version=world.model, input_text=record.fields["text"],
                                    output=record.fields["label"], inference_id="inf-copy-1")
    assert again.pk == receipt.pk and AttributionReceipt.objects.count() == 1
    with pytest.raises(services.ReceiptMismatch):
        services.receipt_create(model_version=world.model, input_text="anything", output="billing",
                                inference_id="inf-copy-1")
    assert AttributionReceipt.objects.count() == 1


def test_receipts_reproduce_bit_for_bit(world, well_predicted):
    _, record = well_predicted[1]
    first = services.receipt_create(model_version=world.model, input_text=record.fields["text"], output="shipping")
    second = services.receipt_create(model_version=world.model, input_text=record.fields["text"], output="shipping")
    assert first.receipt_id != second.receipt_id
    assert first.receipt_digest == second.receipt_digest and first.payload["top_rows"] == second.payload["top_rows"]
    check = services.receipt_verify(receipt=first)
    assert check.ok, check.problems
    assert check.recomputed_digest == first.receipt_digest
    # A stored receipt that was edited no longer verifies.
    AttributionReceipt.objects.filter(pk=first.pk).update(output="billing")
    first.refresh_from_db()
    assert not services.receipt_verify(receipt=first).ok


def test_a_tampered_shard_fails_verification_and_receipts_refuse(world, well_predicted, key_client):
    _, record = well_predicted[0]
    services.receipt_create(model_version=world.model, input_text=record.fields["text"], output="billing")  # cached
    shard = index_dir(world) / "shard_00000.safetensors"
    original = shard.read_bytes()
    try:
        tampered = bytearray(original)
        tampered[-3] ^= 0x55
        shard.write_bytes(bytes(tampered))
        with pytest.raises(services.IndexCorrupt, match="failed verification"):
            services.receipt_create(model_version=world.model, input_text=record.fields["text"], output="billing")
        response = key_client(world.alice, "infer").post(
            "/api/v1/attributions/", {"model": world.model.slug, "input": "refund me", "output": "billing"}, format="json")
        assert response.status_code == 503 and response.json()["code"] == "index_corrupt"
        with pytest.raises(services.IndexCorrupt):
            services.index_verify(model_version=world.model)
        index = index_of(world)
        assert index.state == IndexState.FAILED and "shard_00000.safetensors: sha256 mismatch" in index.error
        world.model.refresh_from_db()
        assert world.model.attribution_status == "failed"
        with pytest.raises(services.IndexNotReady, match="failed"):
            services.receipt_create(model_version=world.model, input_text="refund me", output="billing")
    finally:
        shard.write_bytes(original)
        services.cache_clear()


def test_api_round_trip_with_api_keys_and_scopes(world, key_client):
    body = {"model": world.model.slug, "input": "I was charged $49 twice for my team plan"}
    denied = key_client(world.alice, "read").post("/api/v1/attributions/", body, format="json")
    assert denied.status_code == 403 and "infer" in denied.json()["detail"]
    created = key_client(world.alice, "infer").post("/api/v1/attributions/", body, format="json")
    assert created.status_code == 201, created.content
    receipt = created.json()
    assert receipt["output"] == "billing"  # the model answered first, then its answer was attributed
    assert receipt["model"] == world.model.slug and receipt["index_hash"] == index_of(world).index_hash
    assert sum(receipt["contributor_shares_ppm"].values()) in (0, PPM)
    assert receipt["url"].endswith(reverse("attribution:receipt", args=[receipt["receipt_id"]]))
    assert "seed" not in str(receipt["method"])

    fetched = key_client(world.alice, "read").get(f"/api/v1/attributions/{receipt['receipt_id']}/")
    assert fetched.status_code == 200 and fetched.json()["receipt_digest"] == receipt["receipt_digest"]
    assert fetched.json()["input"] == body["input"]
    stranger = key_client(world.charlie, "read").get(f"/api/v1/attributions/{receipt['receipt_id']}/")
    assert stranger.status_code == 200 and stranger.json()["input"] is None  # the question stays private
    assert key_client(world.alice, "infer").get(f"/api/v1/attributions/{receipt['receipt_id']}/").status_code == 403
    assert key_client(world.alice, "read").get("/api/v1/attributions/no-such-receipt/").status_code == 404

    bad = key_client(world.alice, "infer").post("/api/v1/attributions/", {**body, "output": "weather"}, format="json")
    assert bad.status_code == 400 and "output" in bad.json()["fields"]
    hidden = key_client(world.charlie, "infer").post("/api/v1/attributions/", body, format="json")
    assert hidden.status_code == 404  # an undeployed model is visible to its owner only


def test_receipt_page_explains_rows_shares_and_method(world, well_predicted, client):
    _, record = well_predicted[0]
    receipt = services.receipt_create(model_version=world.model, input_text=record.fields["text"],
                                      output=record.fields["label"])
    page = client.get(reverse("attribution:receipt", args=[receipt.receipt_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert record.fields["text"] in html  # the top row's excerpt
    assert "Support intents" in html and 'data-contributor="' in html and 'class="bar"' in html
    assert receipt.index_hash in html and "fisher" in html and " ms" in html
    assert "one damping for the rows listed and the shares paid" in html
    paid = receipt.payload["paid_rows"]
    assert paid and set(paid) == set(receipt.contributor_shares_ppm)
    # Each paid contributor's rows are shown with their part of the pool, under that contributor.
    for contributor, rows in paid.items():
        assert f'<details class="paid-rows" data-contributor="{contributor}"' in html
        assert all(f'data-paid-row="{row["row_id"]}"' in html for row in rows)
    # The most-like rows say which of them earned part of this fee, and the page says why the lists differ.
    assert 'data-testid="most-like-intro"' in html and "differ on purpose" in html
    paid_percent = {row["row_id"]: 100 * row["credit"] for rows in paid.values() for row in rows}
    most_like = selectors.explain_receipt_rows(receipt=receipt, user=AnonymousUser())
    assert [row.row_id for row in most_like] == [row["row_id"] for row in receipt.top_rows]
    assert [row.paid_percent for row in most_like] == [paid_percent.get(row.row_id) for row in most_like]
    assert html.count('data-testid="paid-here"') == len(most_like)
    assert any(row.paid_percent is not None for row in most_like)  # some of the highest-scoring rows were paid
    for row in most_like:
        if row.paid_percent is not None:
            assert f"{row.paid_percent:.2f}% of the pool" in html
    if receipt.payload["basis"] == "attribution":
        assert 'data-testid="basis"' in html and "false-discovery rate of 10%" in html
    else:
        assert 'data-testid="no-shares"' in html and "owner does" in html
    assert "Negative influence" in html
    assert str(index_of(world).seed) not in html
    assert 'data-testid="input"' not in html  # anonymous visitors do not see the question
    client.force_login(world.alice)
    assert 'data-testid="input"' in client.get(reverse("attribution:receipt", args=[receipt.receipt_id])).content.decode()
    listing = client.get(reverse("attribution:index")).content.decode()
    assert world.model.slug in listing and "Ready" in listing and str(index_of(world).seed) not in listing


def test_a_version_whose_index_failed_shows_the_reason(world, client):
    job = FineTuneJob.objects.create(owner=world.alice, name="broken", base_model=world.model.base_model,
                                     task=world.model.task, hyperparameters={})
    broken = ModelVersion.objects.create(
        job=job, owner=world.alice, base_model=world.model.base_model, name="Broken", slug="broken-model",
        version_hash="f" * 64, task=world.model.task, label_names=world.model.label_names,
        storage_prefix="models/" + "f" * 64, manifest=world.model.manifest, lineage=world.model.lineage,
    )
    index = services.index_build(model_version_id=broken.pk)
    assert index.state == IndexState.FAILED and "cannot be loaded" in index.error
    broken.refresh_from_db()
    assert broken.attribution_status == "failed"
    with pytest.raises(services.IndexNotReady, match="cannot be loaded"):
        services.receipt_create(model_version=broken, input_text="refund me", output="billing")
    client.force_login(world.alice)
    listing = client.get(reverse("attribution:index")).content.decode()
    assert "Failed" in listing and "cannot be loaded" in listing
    valuation = client.get(reverse("attribution:valuation", args=[broken.slug])).content.decode()
    assert 'data-testid="index-error"' in valuation and "cannot be loaded" in valuation


def _version_without_files(world, slug: str, hash_char: str) -> ModelVersion:
    job = FineTuneJob.objects.create(owner=world.alice, name=slug, base_model=world.model.base_model,
                                     task=world.model.task, hyperparameters={})
    return ModelVersion.objects.create(
        job=job, owner=world.alice, base_model=world.model.base_model, name=slug.title(), slug=slug,
        version_hash=hash_char * 64, task=world.model.task, label_names=world.model.label_names,
        storage_prefix="models/" + hash_char * 64, manifest=world.model.manifest, lineage=world.model.lineage,
    )


def test_an_unexpected_build_error_is_hidden_from_public_pages(world, client, monkeypatch, caplog):
    version = _version_without_files(world, "crashing-model", "e")

    def crash(*, index, work):
        raise OSError(f"[Errno 28] No space left on device: '{work}/shard_00003.safetensors'")

    monkeypatch.setattr(builds, "_build", crash)
    index = services.index_build(model_version_id=version.pk)
    assert index.state == IndexState.FAILED and "No space" not in index.error and "OSError" not in index.error
    error_id = re.search(r"error id ([0-9a-f]{12})", index.error).group(1)
    assert error_id in caplog.text and "No space left on device" in caplog.text
    version.refresh_from_db()
    assert version.attribution_status == "failed"
    assert AuditEvent.objects.filter(action="attribution.index_failed", object_id=str(index.pk)).count() == 1
    client.force_login(world.alice)
    listing = client.get(reverse("attribution:index")).content.decode()
    assert error_id in listing and "No space" not in listing


def test_an_index_build_whose_worker_keeps_dying_fails_with_a_reason_then_rebuilds_on_request(world, monkeypatch,
                                                                                          settings):
    version = _version_without_files(world, "dying-model", "d")
    index = services.index_build(model_version_id=version.pk)  # failed with its reason: no adapter files
    assert index.state == IndexState.FAILED and index.attempts == 1 and "cannot be loaded" in index.error
    # Deliveries that died mid-build leave it `building`; the one after the cap gives up without building.
    AttributionIndex.objects.filter(pk=index.pk).update(state=IndexState.BUILDING, attempts=settings.JOB_MAX_ATTEMPTS)
    monkeypatch.setattr(builds, "_build", lambda **kwargs: pytest.fail("built past the attempt cap"))
    index = services.index_build(model_version_id=version.pk)
    assert index.state == IndexState.FAILED
    assert index.error == (f"The attribution index build stopped after {settings.JOB_MAX_ATTEMPTS} attempts: the "
                           "worker crashed each time. Contact an admin to have it built again.")

    def refuse(*, index, work):
        raise services.BuildError("The model version's adapter files are missing; register the model again.")

    monkeypatch.setattr(builds, "_build", refuse)
    index = services.index_build(model_version_id=version.pk)  # a new build of the failed index starts afresh
    assert index.state == IndexState.FAILED and index.attempts == 1
    assert index.error == "The model version's adapter files are missing; register the model again."


def test_valuation_flags_mislabeled_rows_into_the_review_queue(world, client):
    report = ValuationReport.objects.get(model_version=world.model)
    assert report.eval_rows == len(world.model.manifest["content"]["data"]["eval_row_ids"]) and not report.error
    assert len(report.row_values) == index_of(world).row_count
    assert set(report.contributor_values) == {str(u.pk) for u in (world.alice, world.bob, world.charlie, *world.others)}
    flagged = {row["row_id"] for row in report.likely_mislabeled}
    assert flagged, "no row stood out as mislabeled"
    # The planted wrong labels hurt the eval split more than the other rows, on average.
    harm = {row_id: -value for row_id, value in report.row_values.items()}
    planted = [harm[r] for r in world.flipped if r in harm]
    others = [h for r, h in harm.items() if r not in world.flipped]
    assert planted and sum(planted) / len(planted) > sum(others) / len(others)
    queue = datanet_selectors.review_queue(datanet=world.datanet, status="accepted", flag="mislabeled")
    assert {r.row_uid for r in queue} == flagged
    assert all(r.quality["mislabel_score"] > 0 for r in queue)
    client.force_login(world.alice)
    page = client.get(reverse("attribution:valuation", args=[world.model.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Likely mislabeled" in html and all(f'data-row="{uid}"' in html for uid in flagged)
    assert selectors.valuation_for(model_version=world.model) == report


def test_an_attribution_asked_for_directly_is_charged_like_an_answer_and_pays_the_rows_it_names(world, key_client):
    """Free probes would let anyone learn which rows earn on which inputs (to upload rewordings of them) from
    as many accounts as they like; a probe costs what an answer costs and its fee is split by its receipt."""
    from rewards.models import PendingFee, Settlement
    from rewards.services import credit_grant

    body = {"model": world.model.slug, "input": "My parcel from Lagos is ten days late", "output": "shipping"}
    price = 7 * 10**15
    ModelVersion.objects.filter(pk=world.model.pk).update(price_per_inference=price)
    try:
        before = AttributionReceipt.objects.count()
        short = key_client(world.charlie, "infer").post("/api/v1/attributions/", {**body, "model": world.model.slug},
                                                        format="json")
        # Charlie cannot see the undeployed model at all; Alice (its owner) can, but has no credit yet.
        assert short.status_code == 404
        unpaid = key_client(world.alice, "infer").post("/api/v1/attributions/", body, format="json")
        assert unpaid.status_code == 402, unpaid.content
        error = unpaid.json()
        assert error["code"] == "insufficient_credit" and "costs what an answer" in error["detail"]
        assert AttributionReceipt.objects.count() == before  # nothing computed for them is kept or shown

        credit_grant(actor=None, user=world.alice, amount=price, reason="probe test")
        paid = key_client(world.alice, "infer").post("/api/v1/attributions/", body, format="json")
        assert paid.status_code == 201, paid.content
        receipt = paid.json()
        inference_id = f"attribution-probe:{receipt['receipt_id']}"
        fee = (PendingFee.objects.filter(inference_id=inference_id).first()
               or Settlement.objects.filter(inference_id=inference_id).first())
        assert fee is not None and int(fee.fee) == price and fee.receipt_id == receipt["receipt_id"]
        if isinstance(fee, PendingFee):
            assert {int(k): v for k, v in fee.contributor_shares.items()} == {
                int(k): v for k, v in receipt["contributor_shares_ppm"].items()}
        again = key_client(world.alice, "infer").post("/api/v1/attributions/", body, format="json")
        assert again.status_code == 402  # the one grant paid for one probe
    finally:
        ModelVersion.objects.filter(pk=world.model.pk).update(price_per_inference=0)
