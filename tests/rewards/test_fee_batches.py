"""Fees held per inference and booked in batches: the hold refuses short credit, a batch books exactly
what single settlements would, with a fixed number of queries, never twice, and a crash rolls it back."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rewards import ledger, selectors, services
from rewards.models import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PendingFee,
    Settlement,
    SettlementShare,
)
from rewards.services import settlement
from rewards.tasks import fees_settle

OPEN = 10**18
MODEL = "ef" * 32


def record(n, payer, owner, fee, shares, **kwargs):
    return services.fee_record(inference_id=f"inf-{n}", payer=payer, model_owner=owner, fee=fee,
                               contributor_shares=shares, model_version_hash=MODEL, receipt_id=f"r-{n}",
                               settle_soon=False, **kwargs)


def test_a_recorded_fee_is_held_then_booked_by_a_batch(db, charlie, alice, dora, staff, grant):
    grant(charlie, 10 * OPEN)
    fees = [OPEN + 1, 2 * OPEN + 7, 3]
    for n, fee in enumerate(fees):
        pending = record(n, charlie, alice, fee, {dora.pk: 700_001, staff.pk: 299_999},
                         contributor_rows={dora.pk: ["row-1", "row-2"], 999: ["not a contributor"]})
    assert isinstance(pending, PendingFee) and pending.contributor_rows == {str(dora.pk): ["row-1", "row-2"]}
    # Held, not charged yet: the spendable credit is lower, the booked balance is not.
    assert selectors.credit_balance(user=charlie) == 10 * OPEN - sum(fees)
    assert ledger.balance(kind=AccountKind.CREDIT, user=charlie) == 10 * OPEN
    assert not Settlement.objects.exists()
    check = ledger.ledger_check()
    assert check.ok, check.problems
    shown = selectors.fee_for(inference_id="inf-0", user=charlie)
    assert shown["status"] == "pending" and shown["fee"] == OPEN + 1

    batch = services.fee_settle_batch()
    assert (batch.settled, batch.released) == (3, 0)
    assert not PendingFee.objects.exists()
    assert Settlement.objects.filter(transaction_id=batch.transaction_id).count() == 3
    assert ledger.balance(kind=AccountKind.CREDIT, user=charlie) == 10 * OPEN - sum(fees)
    assert selectors.credit_balance(user=charlie) == 10 * OPEN - sum(fees)
    booked = selectors.fee_for(inference_id="inf-0", user=charlie)
    assert booked["status"] == "settled" and booked["settled_at"] is not None
    # The pending view showed exactly the split that was booked.
    assert {k: booked[k] for k in ("fee", "protocol", "owner", "contributors")} == {
        k: shown[k] for k in ("fee", "protocol", "owner", "contributors")}
    settlement = Settlement.objects.get(inference_id="inf-0")
    assert settlement.shares.get(user=dora).rows == ["row-1", "row-2"]
    assert services.fee_settle_batch().settled == 0  # nothing left
    check = ledger.ledger_check()
    assert check.ok, check.problems


def test_a_batch_books_what_single_settlements_would(db, make_user, grant, staff):
    # Outside the cast: six accounts, two each of payers, owners and contributors, so one batch mixes them.
    users = [make_user(f"u{i}") for i in range(6)]
    payers, owners, contributors = users[:2], users[2:4], users[4:] + [staff]
    for payer in payers:
        grant(payer, 1_000 * OPEN)
    services.fee_policy_set(actor=staff, protocol_bps=1_111, owner_bps=2_222, contributors_bps=6_667)
    cases = []
    for n in range(30):
        fee = (n * 7_919 + 1) * 10**13 + n  # awkward amounts: every split leaves remainders
        shares = {} if n % 7 == 0 else {contributors[0].pk: 333_333, contributors[1].pk: 333_333,
                                        contributors[2].pk: 333_334} if n % 2 else {contributors[n % 3].pk: 10**6}
        record(n, payers[n % 2], owners[n % 2], fee, shares)
        cases.append((n, fee, shares))
    policy = services.fee_policy_current()
    assert services.fee_settle_batch(limit=1_000).settled == 30
    for n, fee, shares in cases:
        settlement = Settlement.objects.get(inference_id=f"inf-{n}")
        expected = services.fee_split(fee=fee, policy=policy, contributor_shares=shares)
        assert (settlement.protocol_amount, settlement.owner_amount, settlement.fallback_used) == (
            expected.protocol, expected.owner, expected.fallback_used)
        assert dict(settlement.shares.filter(role="contributor").values_list("user_id", "amount")) == expected.contributors
        assert settlement.protocol_amount + settlement.owner_amount + settlement.contributors_amount == fee
    # One transaction, one entry per account; every base unit accounted for.
    [txn] = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.FEE)
    assert txn.entries.count() == len({e.account_id for e in txn.entries.all()})
    assert ledger.sum_amounts(txn.entries.all()) == 0
    assert ledger.balance(kind=AccountKind.TREASURY) == ledger.sum_amounts(Settlement.objects.all(), "protocol_amount")
    check = ledger.ledger_check()
    assert check.ok, check.problems


def test_a_batch_takes_the_same_number_of_queries_for_5_or_40_fees(db, charlie, alice, dora, staff, grant):
    grant(charlie, 1_000 * OPEN)
    grant(dora, 1_000 * OPEN)
    counts = []
    # (The first batch also creates the earnings accounts. Sizes stay under SQLite's 999 parameters per
    # INSERT, past which Django splits a bulk insert; PostgreSQL has no such split.)
    for size in (1, 5, 40):
        for n in range(size):
            record(f"{size}-{n}", (charlie, dora)[n % 2], alice, OPEN + n, {dora.pk: 500_000, staff.pk: 500_000})
        with CaptureQueriesContext(connection) as queries:
            assert services.fee_settle_batch(limit=size).settled == size
        counts.append(len(queries))
    assert counts[1] == counts[2] <= 16, counts
    assert ledger.ledger_check().ok


def test_the_hold_refuses_what_the_spendable_credit_does_not_cover(db, charlie, alice, dora, grant):
    grant(charlie, 100)
    record(1, charlie, alice, 60, {})
    before = (PendingFee.objects.count(), LedgerAccount.objects.get(key=f"credit:{charlie.pk}").held)
    with pytest.raises(services.InsufficientCredit) as refused:
        record(2, charlie, alice, 41, {})
    assert (refused.value.needed, refused.value.available) == (41, 40)
    assert (PendingFee.objects.count(), LedgerAccount.objects.get(key=f"credit:{charlie.pk}").held) == before
    with pytest.raises(services.InsufficientCredit):
        record(3, dora, alice, 1, {})  # no credit account at all
    assert not LedgerAccount.objects.filter(key=f"credit:{dora.pk}").exists()
    services.fee_settle_batch()
    record(4, charlie, alice, 40, {})  # exactly what is left
    with pytest.raises(services.InsufficientCredit):
        record(5, charlie, alice, 1, {})
    services.fee_settle_batch()
    assert ledger.balance(kind=AccountKind.CREDIT, user=charlie) == 0
    assert ledger.ledger_check().ok


def test_bad_input_is_refused_before_anything_is_held(db, charlie, alice, dora, grant):
    grant(charlie, OPEN)
    with pytest.raises(ValidationError, match="no floats"):
        record(1, charlie, alice, 0.5, {})
    with pytest.raises(ValidationError, match="Unknown user"):
        record(1, charlie, alice, 5, {123_456: 10**6})
    with pytest.raises(ValidationError, match="sum to 1,000,000"):
        record(1, charlie, alice, 5, {dora.pk: 999_999})
    with pytest.raises(ValidationError, match="inference id"):
        services.fee_record(inference_id=" ", payer=charlie, model_owner=alice, fee=5, contributor_shares={},
                            model_version_hash=MODEL, settle_soon=False)
    assert not PendingFee.objects.exists() and selectors.credit_balance(user=charlie) == OPEN


def test_recording_twice_holds_once_and_a_late_duplicate_is_released_not_charged(db, charlie, alice, grant):
    grant(charlie, OPEN)
    first = record(1, charlie, alice, 1_000, {})
    assert record(1, charlie, alice, 1_000, {}).pk == first.pk
    assert LedgerAccount.objects.get(key=f"credit:{charlie.pk}").held == 1_000
    with pytest.raises(ValidationError, match="never charged twice"):
        record(1, charlie, alice, 999, {})
    services.fee_settle_batch()
    again = record(1, charlie, alice, 1_000, {})
    assert isinstance(again, Settlement) and not PendingFee.objects.exists()
    # A retry that raced the settlement (its settled check ran just before the batch committed) leaves a
    # second pending row for the same inference: the next batch releases its hold and charges nothing.
    PendingFee.objects.create(inference_id="inf-1", payer=charlie, model_owner=alice, model_version_hash=MODEL, fee=1_000,
                              policy=services.fee_policy_current())
    ledger.credit_hold(user_id=charlie.pk, amount=1_000)
    batch = services.fee_settle_batch()
    assert (batch.settled, batch.released, batch.transaction_id) == (0, 1, None)
    assert ledger.balance(kind=AccountKind.CREDIT, user=charlie) == OPEN - 1_000
    assert selectors.credit_balance(user=charlie) == OPEN - 1_000
    assert Settlement.objects.count() == 1
    assert ledger.ledger_check().ok


def test_a_batch_killed_midway_books_nothing_and_the_rerun_books_once(db, charlie, alice, dora, grant, monkeypatch):
    grant(charlie, OPEN)
    for n in range(3):
        record(n, charlie, alice, 1_000 + n, {dora.pk: 10**6})
    real_insert_rows = settlement.insert_rows  # the batch's bulk insert, where fee_settle_batch finds it

    def killed_at_the_shares(model, rows, **kwargs):
        # The settlements and the ledger entries are written by now; the process dies before the shares.
        if model is SettlementShare:
            raise RuntimeError("worker killed")
        return real_insert_rows(model, rows, **kwargs)

    monkeypatch.setattr(settlement, "insert_rows", killed_at_the_shares)
    with pytest.raises(RuntimeError, match="worker killed"):
        services.fee_settle_batch()
    assert not Settlement.objects.exists() and not LedgerEntry.objects.filter(transaction__kind="fee").exists()
    assert PendingFee.objects.count() == 3
    assert LedgerAccount.objects.get(key=f"credit:{charlie.pk}").held == 3_003
    assert ledger.ledger_check().ok

    monkeypatch.setattr(settlement, "insert_rows", real_insert_rows)
    assert services.fee_settle_batch().settled == 3
    assert services.fee_settle_batch().settled == 0
    assert ledger.balance(kind=AccountKind.CREDIT, user=charlie) == OPEN - 3_003
    policy = services.fee_policy_current()
    assert ledger.balance(kind=AccountKind.EARNINGS, user=dora) == sum(
        services.fee_split(fee=1_000 + n, policy=policy, contributor_shares={dora.pk: 10**6}).contributors[dora.pk]
        for n in range(3))
    assert ledger.ledger_check().ok


def test_recording_queues_one_settlement_run_and_beat_books_the_rest(db, charlie, alice, grant,
                                                                     django_capture_on_commit_callbacks):
    grant(charlie, OPEN)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        services.fee_record(inference_id="live-1", payer=charlie, model_owner=alice, fee=10, contributor_shares={},
                            model_version_hash=MODEL)
    assert len(queued) == 1 and Settlement.objects.filter(inference_id="live-1").exists()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        services.fee_record(inference_id="live-2", payer=charlie, model_owner=alice, fee=10, contributor_shares={},
                            model_version_hash=MODEL)
    assert queued == [] and PendingFee.objects.filter(inference_id="live-2").exists()  # debounced
    assert fees_settle.delay().get() == 1  # the beat task
    assert not PendingFee.objects.exists() and ledger.ledger_check().ok


def test_fee_api_shows_the_split_pending_then_settled(db, key_client, charlie, alice, dora, grant):
    grant(charlie, OPEN)
    record(1, charlie, alice, 1_000, {dora.pk: 10**6})
    payer = key_client(charlie, "read")
    body = payer.get("/api/v1/rewards/fees/inf-1/").json()
    assert body["status"] == "pending"
    assert (body["fee"], body["protocol"], body["owner"]) == ("1000", "100", "300")
    assert body["contributors"] == [{"user_id": dora.pk, "amount": "600"}]
    assert key_client(alice, "read").get("/api/v1/rewards/fees/inf-1/").status_code == 200  # the model's owner
    stranger = key_client(dora, "read").get("/api/v1/rewards/fees/inf-1/")
    assert stranger.status_code == 404 and stranger.json()["code"] == "not_found"
    assert payer.get("/api/v1/rewards/fees/no-such/").status_code == 404
    services.fee_settle_batch()
    settled = payer.get("/api/v1/rewards/fees/inf-1/").json()
    assert settled["status"] == "settled" and settled["contributors"] == body["contributors"]


def test_an_epoch_close_books_recorded_fees_first(chain, charlie, alice, dora, grant, link_wallet):
    grant(dora, OPEN)
    link_wallet(charlie, chain.wallets[0])
    record(1, dora, alice, 1_000, {charlie.pk: 10**6})
    epoch = services.epoch_close()
    assert epoch.increase == 600 and not PendingFee.objects.exists()
    assert ledger.balance(kind=AccountKind.PENDING, user=charlie) == 600
    assert ledger.ledger_check().ok
