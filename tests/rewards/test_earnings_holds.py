"""Harm holds (issue #16): a contributor whose rows harm a model's held-out evaluation has their pending
earnings held for curator review. Against the real in-process chain: held earnings stay out of the
Merkle tree until released, the books keep balancing, the page and the admin show and decide holds."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import AuditEvent
from rewards import ledger, services
from rewards.holds import earnings_hold_confirm, earnings_hold_for_harm, earnings_hold_release
from rewards.models import (
    AccountKind,
    EarningsHold,
    HoldState,
    PayoutAllocation,
    PayoutLeaf,
    SettlementShare,
)
from rewards.selectors import claims_for, earnings_for, earnings_holds_held, earnings_holds_open

OPEN = 10**18
MODEL = "ab" * 32
OTHER_MODEL = "ef" * 32


@pytest.fixture
def erin(make_user):
    """Outside the cast: a second contributor, beside dora, whose earnings are paid while hers are held."""
    return make_user("erin")


@pytest.fixture
def fees(chain, charlie, alice, grant):
    """`fees(n, {user: ppm})` settles n fees of 10 OPEN (6 OPEN to contributors) paid by charlie on alice's model."""
    grant(charlie, 1_000 * OPEN)
    counter = iter(range(10_000))

    def settle(n, shares, model=MODEL):
        for _ in range(n):
            number = next(counter)
            services.fee_settle(inference_id=f"harm-{number}", payer=charlie, model_owner=alice, fee=10 * OPEN,
                                contributor_shares={u.pk: ppm for u, ppm in shares.items()}, model_version_hash=model,
                                receipt_id=f"rc-{number}",
                                contributor_rows={u.pk: [f"row-{u.username}-{number}"] for u in shares})

    return settle


@pytest.fixture
def wallets(chain, dora, alice, erin, link_wallet):
    link_wallet(dora, chain.wallets[0])
    link_wallet(alice, chain.wallets[1])
    link_wallet(erin, chain.wallets[2])


def _hold(user, *, rows=("row-7", "row-9"), model=MODEL, harm=0.42, threshold=0.1, reason="Flipped labels"):
    return earnings_hold_for_harm(user_id=user.pk, model_version_hash=model, rows=list(rows), harm=harm,
                                  threshold=threshold, reason=reason)


def _contributed(user, model=None) -> int:
    shares = SettlementShare.objects.filter(user=user, role="contributor")
    if model:
        shares = shares.filter(settlement__model_version_hash=model)
    return ledger.sum_amounts(shares)


def _leaf(epoch, user) -> int:
    leaf = PayoutLeaf.objects.filter(epoch=epoch, user=user).first()
    return leaf.cumulative_amount if leaf else 0


def _books_and_chain_agree():
    check = ledger.ledger_check()
    assert check.ok, check.problems
    assert services.chain_reconcile() == []


# --- The service -----------------------------------------------------------------------------------------

def test_hold_is_idempotent_and_updates_the_evidence_of_the_open_hold(db, dora):
    hold = _hold(dora, rows=["row-9", "row-7", "row-9"])
    assert hold.state == HoldState.HELD and hold.reason == "Flipped labels"
    assert hold.evidence == {"rows": ["row-7", "row-9"], "row_count": 2, "harm": 0.42, "threshold": 0.1}
    assert AuditEvent.objects.filter(action="rewards.earnings_hold", object_id=str(hold.pk)).count() == 1

    again = _hold(dora, rows=["row-7", "row-9"])
    assert again.pk == hold.pk and EarningsHold.objects.count() == 1
    assert not AuditEvent.objects.filter(action="rewards.earnings_hold_update").exists()  # nothing changed

    updated = _hold(dora, rows=["row-7", "row-9", "row-11"], harm=0.5)
    assert updated.pk == hold.pk and EarningsHold.objects.count() == 1
    hold.refresh_from_db()
    assert hold.evidence == {"rows": ["row-11", "row-7", "row-9"], "row_count": 3, "harm": 0.5, "threshold": 0.1}
    event = AuditEvent.objects.get(action="rewards.earnings_hold_update")
    assert event.details["previous"]["rows"] == ["row-7", "row-9"]

    other = _hold(dora, model=OTHER_MODEL)  # one open hold per (user, model version)
    assert other.pk != hold.pk
    assert [h.pk for h in earnings_holds_open(user=dora)] == [other.pk, hold.pk]
    with pytest.raises(IntegrityError), transaction.atomic():
        EarningsHold.objects.create(user=dora, model_version_hash=MODEL, reason="twice", evidence={})


def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(db, dora):
    with pytest.raises(ValidationError) as unknown:
        earnings_hold_for_harm(user_id=987_654, model_version_hash=MODEL, rows=["row-1"], harm=0.3, threshold=0.1,
                               reason="Flipped labels")
    assert unknown.value.message_dict["user_id"] == ["No user with id 987654: no earnings hold was recorded."]
    bad = [dict(user_id="1"), dict(rows=[]), dict(rows="row-1"), dict(harm=float("nan")), dict(threshold=True),
           dict(reason="  "), dict(model_version_hash="f" * 65)]
    for override in bad:
        arguments = dict(user_id=dora.pk, model_version_hash=MODEL, rows=["row-1"], harm=0.3, threshold=0.1,
                         reason="Flipped labels") | override
        with pytest.raises(ValidationError):
            earnings_hold_for_harm(**arguments)
    assert not EarningsHold.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="rewards.earnings_hold").exists()


def test_deciding_a_hold_twice_is_refused_and_changes_nothing(db, dora, staff, bob):
    hold = _hold(dora)
    released = earnings_hold_release(hold=hold, actor=staff, note="labels are right")
    assert (released.state, released.decided_by, released.decision_note) == (HoldState.RELEASED, staff,
                                                                             "labels are right")
    before = EarningsHold.objects.values().get(pk=hold.pk)
    with pytest.raises(ValidationError, match=r"already released by staff on .*; nothing was changed"):
        earnings_hold_release(hold=hold, actor=bob, note="again")
    with pytest.raises(ValidationError, match="already released"):
        earnings_hold_confirm(hold=hold, actor=bob)
    assert EarningsHold.objects.values().get(pk=hold.pk) == before
    assert AuditEvent.objects.filter(action="rewards.earnings_hold_release").count() == 1
    assert not AuditEvent.objects.filter(action="rewards.earnings_hold_confirm").exists()
    with pytest.raises(ValidationError, match="signed-in"):
        earnings_hold_confirm(hold=_hold(dora, rows=["row-99"]), actor=None)


def test_a_release_covers_the_rows_it_reviewed(db, dora, staff):
    released = earnings_hold_release(hold=_hold(dora, rows=["row-7", "row-9"]), actor=staff)
    # The next valuation flags the same rows again: the curator already cleared them, nothing is held.
    assert _hold(dora, rows=["row-9"]).pk == released.pk
    assert earnings_holds_open(user=dora) == []
    # A row nobody reviewed opens a new hold.
    fresh = _hold(dora, rows=["row-9", "row-12"])
    assert fresh.state == HoldState.HELD and fresh.pk != released.pk


def test_every_held_hold_waits_for_review_until_decided(db, dora, erin, staff):
    """What the demo's admin reviews before an epoch: everyone's undecided holds, newest first, with their users."""
    doras, erins, confirmed = _hold(dora), _hold(erin), _hold(erin, model=OTHER_MODEL)
    earnings_hold_confirm(hold=confirmed, actor=staff)
    assert [(h.pk, h.user.username) for h in earnings_holds_held()] == [(erins.pk, "erin"), (doras.pk, "dora")]
    earnings_hold_release(hold=erins, actor=staff)
    assert [h.pk for h in earnings_holds_held()] == [doras.pk]


# --- Epochs ----------------------------------------------------------------------------------------------

def test_held_earnings_stay_out_of_the_tree_until_released(chain, wallets, fees, dora, erin, staff):
    fees(2, {dora: 500_000, erin: 500_000})
    first = services.epoch_close()
    dora_first, erin_first = _leaf(first, dora), _leaf(first, erin)
    assert dora_first == erin_first == 6 * OPEN

    fees(3, {dora: 500_000, erin: 500_000})
    hold = _hold(dora)
    held = ledger.balance(kind=AccountKind.EARNINGS, user=dora)
    assert held == 9 * OPEN
    second = services.epoch_close()
    # Dora's cumulative amount does not grow; what was published before the hold stays claimable.
    assert _leaf(second, dora) == dora_first and _leaf(second, erin) == erin_first + 9 * OPEN
    assert not PayoutAllocation.objects.filter(epoch=second, user=dora).exists()
    assert ledger.balance(kind=AccountKind.EARNINGS, user=dora) == held  # still in the ledger
    assert second.increase == 9 * OPEN + 3 * 3 * OPEN  # erin + alice (owner, 3 OPEN a fee)
    _books_and_chain_agree()
    assert earnings_for(user=dora)["totals"]["held"] == held
    [claim] = claims_for(user=dora)
    assert claim["claimable"] == dora_first

    fees(1, {dora: 500_000, erin: 500_000})  # keeps accruing while held
    assert services.epoch_close().number == 3  # erin and alice are paid; dora still waits
    released = earnings_hold_release(hold=hold, actor=staff, note="labels checked by hand")
    assert released.state == HoldState.RELEASED and earnings_holds_open(user=dora) == []
    fourth = services.epoch_close()
    assert _leaf(fourth, dora) == _contributed(dora) == dora_first + 12 * OPEN
    assert ledger.balance(kind=AccountKind.EARNINGS, user=dora) == 0
    assert fourth.increase == 12 * OPEN

    # Every address's cumulative amount only ever grew, epoch after epoch.
    for user in (dora, erin):
        amounts = list(PayoutLeaf.objects.filter(user=user).order_by("epoch__number")
                       .values_list("cumulative_amount", flat=True))
        assert amounts == sorted(amounts)
    [claim] = claims_for(user=dora)
    chain.distributor.claim(claim["address"], claim["cumulative_amount"],
                            [bytes.fromhex(p[2:]) for p in claim["proof"]], sender=chain.wallets[0])
    assert chain.token.balance_of(chain.wallets[0].address) == _contributed(dora)
    assert services.claims_index() == 1
    _books_and_chain_agree()


def test_a_confirmed_hold_withholds_that_models_earnings_and_pays_the_rest(chain, wallets, fees, dora, erin, staff):
    fees(2, {dora: 500_000, erin: 500_000})
    fees(1, {dora: 10**6}, model=OTHER_MODEL)
    hold = _hold(dora)
    confirmed = earnings_hold_confirm(hold=hold, actor=staff, note="row-7 is labelled backwards")
    assert confirmed.withheld_amount == _contributed(dora, MODEL) == 6 * OPEN
    assert SettlementShare.objects.filter(withheld_by=confirmed).count() == 2
    event = AuditEvent.objects.get(action="rewards.earnings_hold_confirm")
    assert event.details["withheld"] == str(6 * OPEN) and event.actor == staff

    fees(1, {dora: 10**6})  # earned after the confirmation: paid as usual unless flagged again
    epoch = services.epoch_close()
    assert _leaf(epoch, dora) == 6 * OPEN + 6 * OPEN  # the other model and the later fee
    # The withheld amount stays in the ledger, never frozen, never claimable; the books still check.
    assert ledger.balance(kind=AccountKind.EARNINGS, user=dora) == 6 * OPEN
    totals = earnings_for(user=dora)["totals"]
    assert (totals["withheld"], totals["accruing"], totals["held"]) == (6 * OPEN, 0, 0)
    _books_and_chain_agree()
    assert services.epoch_close() is None  # nothing more to pay: withheld shares never go out


# --- Pages -----------------------------------------------------------------------------------------------

def test_the_earnings_page_says_held_for_review_with_the_reason_and_rows(chain, wallets, fees, client, dora, staff):
    fees(2, {dora: 10**6})
    _hold(dora, rows=["row-7", "row-9"], reason="Flipped labels lower the held-out accuracy")
    client.force_login(dora)
    page = client.get("/rewards/").content.decode()
    assert "Held for review" in page and "held for review" in page
    assert "Flipped labels lower the held-out accuracy" in page
    assert "<code>row-7</code>" in page and "<code>row-9</code>" in page
    assert 'data-testid="held"><data value="12" title="12 OPEN">12 OPEN</data>' in page
    assert "Accruing (next epoch)" not in page and "claimable" not in page
    body = client.get("/api/v1/rewards/earnings/").json()
    assert body["totals"]["held"] == str(12 * OPEN) and body["totals"]["accruing"] == "0"
    assert body["holds"][0]["rows"] == ["row-7", "row-9"]
    assert {item["status"] for item in body["results"]} == {"held for review"} and body["count"] == 2

    earnings_hold_confirm(hold=EarningsHold.objects.get(), actor=staff, note="confirmed by the curator")
    page = client.get("/rewards/").content.decode()
    assert "Withheld after review" in page and "confirmed by the curator" in page
    assert "will not be paid" in page and 'data-testid="withheld"><data value="12" title="12 OPEN">12 OPEN</data>' in page


# --- Admin -----------------------------------------------------------------------------------------------

def test_admin_lists_filters_and_decides_holds_through_the_services(chain, wallets, fees, client, dora, erin,
                                                                    staff):
    fees(1, {dora: 500_000, erin: 500_000})
    dora_hold, erin_hold = _hold(dora), _hold(erin, rows=["row-3"])
    client.force_login(staff)
    listing = client.get("/admin/rewards/earningshold/?state__exact=held").content.decode()
    assert "row-7, row-9" in listing and "row-3" in listing and "Release: no harm" in listing
    assert client.get(f"/admin/rewards/earningshold/{dora_hold.pk}/change/").status_code == 200

    url = "/admin/rewards/earningshold/"
    response = client.post(url, {"action": "release_holds", "_selected_action": [dora_hold.pk]})
    assert response.status_code == 302
    response = client.post(url, {"action": "confirm_holds", "_selected_action": [erin_hold.pk]})
    assert response.status_code == 302
    dora_hold.refresh_from_db()
    erin_hold.refresh_from_db()
    assert (dora_hold.state, dora_hold.decided_by) == (HoldState.RELEASED, staff)
    assert (erin_hold.state, erin_hold.withheld_amount) == (HoldState.CONFIRMED, 3 * OPEN)
    assert AuditEvent.objects.filter(action="rewards.earnings_hold_release", actor=staff).count() == 1

    again = client.post(url, {"action": "confirm_holds", "_selected_action": [dora_hold.pk]}, follow=True)
    assert "already released" in again.content.decode()
    dora_hold.refresh_from_db()
    assert dora_hold.state == HoldState.RELEASED
    assert "row-3" not in client.get(f"{url}?state__exact=held").content.decode()

    epoch = services.epoch_close()
    assert _leaf(epoch, dora) == 3 * OPEN and _leaf(epoch, erin) == 0
    _books_and_chain_agree()
