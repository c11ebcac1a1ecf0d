"""Issue #16: credit given per account never becomes anyone's earnings. An account costs nothing to make, so a
starter grant spent on one's own model (or a friend's) would otherwise come back as claimable owner and
contributor earnings: a faucet. Starter grants are promotional; fees spend promotional credit first and
book that part back to the grants account, split to nobody; the books still balance."""

from rewards import ledger, services
from rewards.models import AccountKind, PromotionalCredit, Settlement

OPEN = 10**18
FEE = OPEN // 10


def _earned(user) -> int:
    return (ledger.balance(kind=AccountKind.EARNINGS, user=user)
            + ledger.balance(kind=AccountKind.OWNER_EARNINGS, user=user))


def _grants_balance() -> int:
    return ledger.balance(kind=AccountKind.GRANTS)


def test_a_starter_grant_spent_on_ones_own_model_earns_nobody(db, settings, alice, make_user):
    settings.REWARDS_STARTER_GRANT_OPEN = "0.25"
    farmer, sybil = alice, make_user("alice-sybil")  # one person, two accounts: the second, made for its free grant
    services.credit_starter_grant(user=sybil)
    grants_before = _grants_balance()
    assert grants_before == -OPEN // 4

    for n in range(2):  # the sybil spends its whole grant on the farmer's model, trained on the farmer's rows
        settlement = services.fee_settle(inference_id=f"promo-{n}", payer=sybil, model_owner=farmer, fee=FEE,
                                         contributor_shares={farmer.pk: 1_000_000}, model_version_hash="m")
        assert settlement.promotional_amount == FEE
        assert settlement.protocol_amount == settlement.owner_amount == settlement.contributors_amount == 0
    assert _earned(farmer) == 0 and ledger.balance(kind=AccountKind.TREASURY) == 0
    # What was spent went back where it came from: the grants account is down only by the unspent part.
    assert _grants_balance() == grants_before + 2 * FEE
    assert ledger.credit_available(user_id=sybil.pk) == OPEN // 4 - 2 * FEE
    assert PromotionalCredit.objects.get(user=sybil).remaining == OPEN // 4 - 2 * FEE
    assert ledger.ledger_check().ok


def test_a_fee_larger_than_what_is_left_of_the_grant_splits_only_the_paid_part(db, settings, alice, dora, charlie,
                                                                                grant):
    settings.REWARDS_STARTER_GRANT_OPEN = "0.15"
    owner, contributor, payer = alice, dora, charlie
    services.credit_starter_grant(user=payer)
    grant(payer, OPEN)  # an admin grant (not promotional): pays like deposited OPEN

    first = services.fee_settle(inference_id="mixed-1", payer=payer, model_owner=owner, fee=FEE,
                                contributor_shares={contributor.pk: 1_000_000}, model_version_hash="m")
    second = services.fee_settle(inference_id="mixed-2", payer=payer, model_owner=owner, fee=FEE,
                                 contributor_shares={contributor.pk: 1_000_000}, model_version_hash="m")
    third = services.fee_settle(inference_id="mixed-3", payer=payer, model_owner=owner, fee=FEE,
                                contributor_shares={contributor.pk: 1_000_000}, model_version_hash="m")
    assert [s.promotional_amount for s in (first, second, third)] == [FEE, OPEN * 15 // 100 - FEE, 0]
    paid = 3 * FEE - OPEN * 15 // 100  # the part of the three fees paid with the admin's grant
    for settlement in (first, second, third):
        assert (settlement.protocol_amount + settlement.owner_amount + settlement.contributors_amount
                + settlement.promotional_amount) == settlement.fee
    assert (_earned(owner) + _earned(contributor) + ledger.balance(kind=AccountKind.TREASURY)) == paid
    assert second.contributors_amount > 0 and third.contributors_amount > first.contributors_amount == 0
    assert ledger.ledger_check().ok


def test_an_admin_may_mark_a_grant_promotional_and_the_audit_says_so(db, alice, charlie):
    from accounts.models import AuditEvent

    owner, payer = alice, charlie
    given = services.credit_grant(actor=None, user=payer, amount=FEE, reason="conference trial", promotional=True)
    assert given.promotional
    assert AuditEvent.objects.get(action="rewards.credit_grant", object_id=str(given.pk)).details["promotional"] is True
    settlement = services.fee_settle(inference_id="trial-1", payer=payer, model_owner=owner, fee=FEE,
                                     contributor_shares={}, model_version_hash="m")
    assert settlement.promotional_amount == FEE and settlement.owner_amount == 0
    assert ledger.ledger_check().ok


def test_a_fee_recorded_twice_takes_promotional_credit_once_and_a_rolled_back_fee_gives_it_back(
        db, settings, alice, charlie):
    from django.db import transaction

    settings.REWARDS_STARTER_GRANT_OPEN = "1"
    owner, payer = alice, charlie
    services.credit_starter_grant(user=payer)
    services.fee_record(inference_id="twice", payer=payer, model_owner=owner, fee=FEE, contributor_shares={},
                        model_version_hash="m", settle_soon=False)
    services.fee_record(inference_id="twice", payer=payer, model_owner=owner, fee=FEE, contributor_shares={},
                        model_version_hash="m", settle_soon=False)  # a retry: writes nothing
    assert PromotionalCredit.objects.get(user=payer).remaining == OPEN - FEE

    class Abort(Exception):
        pass

    try:
        with transaction.atomic():
            services.fee_record(inference_id="rolled-back", payer=payer, model_owner=owner, fee=FEE,
                                contributor_shares={}, model_version_hash="m", settle_soon=False)
            raise Abort
    except Abort:
        pass
    assert PromotionalCredit.objects.get(user=payer).remaining == OPEN - FEE
    services.fees_settle_pending()
    assert Settlement.objects.get(inference_id="twice").promotional_amount == FEE
    assert not Settlement.objects.filter(inference_id="rolled-back").exists()
    assert ledger.ledger_check().ok


def test_the_admin_grant_form_marks_a_grant_promotional(db, client, staff, charlie):
    from rewards.models import CreditGrant

    client.force_login(staff)
    trial = charlie  # a visitor of the conference booth
    response = client.post("/admin/rewards/creditgrant/add/", {"user": trial.pk, "amount": "0.5",
                                                                "reason": "conference booth", "promotional": "on"})
    assert response.status_code == 302
    assert CreditGrant.objects.get(user=trial).promotional
    assert PromotionalCredit.objects.get(user=trial).remaining == OPEN // 2
    assert "conference booth" in client.get("/admin/rewards/creditgrant/?promotional__exact=1").content.decode()
