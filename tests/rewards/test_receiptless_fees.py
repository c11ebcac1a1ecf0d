"""A fee whose answer has no receipt at all (the index is missing or broken, or the receipt task was lost) pays
its contributors' part to the rows that trained the model: by the value split recorded when its index was
built, or pro rata to rows for a model never indexed. Never to the model owner, whose broken index must not
earn them the pool, and the same whatever accounts hold the rows."""

import pytest
from django.core.management import call_command

from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from models_registry.selectors import model_version_training_rows
from rewards.models import Fallback, SettlementShare
from rewards.services import fee_policy_current, fee_policy_set, fee_settle, fee_split

OPEN = 10**18


def _model(owner, version_hash: str, train: dict[str, int], held_out: dict[str, int]) -> ModelVersion:
    base, _ = BaseModel.objects.get_or_create(slug="tiny", defaults=dict(
        name="Tiny", source_kind="local", source_ref="tiny", architecture="bert", task_types=["text-classification"]))
    job = FineTuneJob.objects.create(owner=owner, name=version_hash[:6], base_model=base, task="text-classification")
    contributors, train_ids, eval_ids = {}, [], []
    for row_id, user_id in train.items():
        contributors[row_id] = str(user_id)
        train_ids.append(row_id)
    for row_id, user_id in held_out.items():
        contributors[row_id] = str(user_id)
        eval_ids.append(row_id)
    manifest = {"content": {"data": {"train_row_ids": train_ids, "eval_row_ids": eval_ids,
                                     "row_contributors": contributors}}}
    return ModelVersion.objects.create(job=job, owner=owner, base_model=base, name=version_hash[:6],
                                       slug=version_hash[:12], version_hash=version_hash, task="text-classification",
                                       storage_prefix=f"models/{version_hash}", manifest=manifest)


@pytest.fixture
def trained(db, dora, alice, charlie, make_user):
    """Alice owns a model trained on three rows of Dora and one of Charlie; Dana's row was held out (eval)."""
    dana = make_user("dana")  # outside the cast: a third contributor, whose row was held out
    model = _model(alice, "e" * 64, {"r1": dora.pk, "r2": dora.pk, "r3": dora.pk, "r4": charlie.pk},
                   {"r5": dana.pk})
    return model, dana


def test_a_receiptless_fee_pays_the_training_rows_not_the_owner(db, dora, alice, charlie, trained, grant):
    model, dana = trained
    assert fee_policy_current().fallback == Fallback.TRAINING_DATA  # the default of a fresh install
    grant(charlie, OPEN)
    settlement = fee_settle(inference_id="no-receipt-1", payer=charlie, model_owner=alice, fee=1000,
                            contributor_shares={}, model_version_hash=model.version_hash, receipt_id=None)
    # 10% protocol, 30% owner, 60% contributors: the pool splits 3:1 by rows trained on; Dana's held-out row
    # earns nothing and the owner gets only the owner's part.
    assert (settlement.protocol_amount, settlement.owner_amount, settlement.contributors_amount) == (100, 300, 600)
    assert settlement.fallback_used
    paid = {s.user_id: (s.amount, s.ppm) for s in SettlementShare.objects.filter(settlement=settlement,
                                                                                 role="contributor")}
    assert paid == {dora.pk: (450, 750_000), charlie.pk: (150, 250_000)}
    assert dana.pk not in paid
    call_command("ledger_check")  # raises on unbalanced books


def test_an_indexed_model_pays_by_the_value_recorded_at_build_not_by_rows(db, dora, alice, charlie, trained, grant):
    """Charlie's one row was worth three times Dora's three on the evaluation split; Alice (the owner) also
    trained on worthless rows of her own, which the value split pays nothing: breaking the index after it was
    built earns her nothing either, because the split lives on the index's database record."""
    from attribution.models import AttributionIndex, IndexState

    model, _ = trained
    AttributionIndex.objects.create(
        model_version=model, model_version_hash=model.version_hash, k=64, seed=1, storage_prefix="gone",
        state=IndexState.FAILED, error="index files failed their re-hash",
        fallback_shares_ppm={str(dora.pk): 250_000, str(charlie.pk): 750_000}, fallback_basis="valuation")
    grant(charlie, OPEN)
    settlement = fee_settle(inference_id="no-receipt-indexed", payer=charlie, model_owner=alice, fee=1000,
                            contributor_shares={}, model_version_hash=model.version_hash, receipt_id=None)
    paid = {s.user_id: (s.amount, s.ppm) for s in SettlementShare.objects.filter(settlement=settlement,
                                                                                 role="contributor")}
    assert settlement.fallback_used and settlement.owner_amount == 300
    assert paid == {dora.pk: (150, 250_000), charlie.pk: (450, 750_000)}
    call_command("ledger_check")


def test_spreading_training_rows_over_accounts_changes_nothing(db, dora, alice, charlie, make_user, grant):
    """Row counts act on rows: Dora's three rows in one account or in three earn the same total."""
    alts = [dora, make_user("dora2"), make_user("dora3")]  # outside the cast: two more accounts of dora's
    one = _model(alice, "1" * 64, {"r1": dora.pk, "r2": dora.pk, "r3": dora.pk, "r4": charlie.pk}, {})
    spread = _model(alice, "2" * 64, {"r1": alts[0].pk, "r2": alts[1].pk, "r3": alts[2].pk, "r4": charlie.pk}, {})
    grant(charlie, OPEN)
    first = fee_settle(inference_id="a", payer=charlie, model_owner=alice, fee=10**6, contributor_shares={},
                       model_version_hash=one.version_hash, receipt_id=None)
    second = fee_settle(inference_id="b", payer=charlie, model_owner=alice, fee=10**6, contributor_shares={},
                        model_version_hash=spread.version_hash, receipt_id=None)
    total = lambda s, users: sum(x.amount for x in SettlementShare.objects.filter(  # noqa: E731
        settlement=s, role="contributor", user__in=users))
    assert total(first, [dora]) == total(second, alts) == 450_000
    assert total(first, [charlie]) == total(second, [charlie]) == 150_000


def test_unknown_training_data_goes_to_the_treasury_and_other_fallbacks_still_apply(db, dora, alice, charlie, staff,
                                                                                      grant):
    grant(charlie, OPEN)
    unknown = fee_settle(inference_id="x1", payer=charlie, model_owner=alice, fee=1000, contributor_shares={},
                         model_version_hash="f" * 64, receipt_id=None)
    assert (unknown.protocol_amount, unknown.owner_amount, unknown.contributors_amount) == (700, 300, 0)
    fee_policy_set(actor=staff, protocol_bps=1_000, owner_bps=3_000, contributors_bps=6_000, fallback="protocol")
    policy = fee_policy_current()
    split = fee_split(fee=1000, policy=policy, contributor_shares={}, training_shares={dora.pk: 3})
    assert (split.protocol, split.owner, split.contributors) == (700, 300, {})
    # A receipt's own shares always win over the fallback.
    split = fee_split(fee=1000, policy=policy, contributor_shares={charlie.pk: 10**6}, training_shares={dora.pk: 3})
    assert split.contributors == {charlie.pk: 600} and not split.fallback_used


def test_training_rows_selector_counts_the_train_split_only(db, alice, dora, charlie, trained):
    model, dana = trained
    assert model_version_training_rows(version_hashes=[model.version_hash, "0" * 64]) == {
        model.version_hash: {dora.pk: 3, charlie.pk: 1}}


def test_the_fee_policy_page_says_where_a_receiptless_fee_goes(client, db, dora):
    client.force_login(dora)
    fee_policy_current()
    page = client.get("/rewards/fees/")
    assert page.status_code == 200
    assert "the contributors of the rows that trained the model" in page.content.decode()
