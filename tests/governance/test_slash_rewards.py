"""A slashed stake becomes the Datanet's honest contributors' earnings, on the real in-process chain: the
spammer's slash moves OPEN into the Datanet's pool on chain, the governance beat books that amount in the ledger
once (keyed by the slash's evidence hash) to the other contributors, pro rata to their accepted rows in the
Datanet's latest version, with an audit row; the next epoch close pays it; the books still balance."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts.models import AuditEvent
from datanets import services as datanet_services
from governance.models import SlashState, StakeSlash
from governance.services import slashes_book, stake_slashes_enforce
from governance.tasks import chain_index_governance
from rewards import ledger
from rewards import services as rewards_services
from rewards.models import (
    AccountKind,
    EpochState,
    LedgerTransaction,
    PayoutAllocation,
    SlashBooking,
    SlashShare,
)
from rewards.selectors import earnings_for, nothing_to_claim

OPEN = 10**18


@pytest.fixture
def spam_world(governance, dev_signing, alice, dora, charlie, link_wallet, client, django_capture_on_commit_callbacks):
    """Alice owns a Datanet; Dora contributes; Charlie stakes 20 OPEN on it and contributes one good row and three
    that Alice rejects as spam. All three have linked wallets (payouts)."""
    datanet = datanet_services.datanet_create(owner=alice, name="Support intents", task_type="text-classification",
                                              label_set=["billing", "shipping"], visibility="public")
    link_wallet(alice, governance.chain.wallets[0])
    link_wallet(dora, governance.chain.wallets[1])
    spammer_wallet = governance.fund(governance.chain.wallets[2], 100 * OPEN)
    link_wallet(charlie, spammer_wallet)
    client.force_login(charlie)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/governance/stakes/", {"datanet": datanet.slug, "amount": "20", "kind": "stake"})
    assert governance.staking.stake_of(spammer_wallet.address, datanet.pk).active == 20 * OPEN

    def contribute(user, texts):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = datanet_services.contribution_create_from_rows(
                datanet=datanet, contributor=user, rows=[{"text": t, "label": "billing"} for t in texts])
        return [r.pk for r in contribution.records.order_by("pk")]

    def review(ids, decision, reason=""):
        datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=ids, decision=decision,
                                        reason=reason)

    alice_rows = contribute(alice, ["refund my double charge", "card charged twice", "invoice is wrong"])
    dora_rows = contribute(dora, ["where is my parcel"])
    charlie_rows = contribute(charlie, ["cancel my order", *(f"buy cheap watches now {n}" for n in range(3))])
    review(alice_rows + dora_rows + charlie_rows[:1], "accept")
    review(charlie_rows[1:], "reject", "Spam: advertising links")
    return datanet, spammer_wallet


def test_a_slash_is_booked_once_to_the_honest_contributors_and_paid_by_the_next_epoch(
        governance, spam_world, alice, dora, charlie):
    datanet, spammer_wallet = spam_world
    [slash] = stake_slashes_enforce()
    assert slash.state == SlashState.DONE and slash.amount == 5 * OPEN  # 25% of 20 OPEN, in the pool on chain
    assert governance.staking.reward_pool(datanet.pk) == 5 * OPEN

    # No version yet: nobody has accepted rows in one, so the slash waits unbooked.
    assert slashes_book() == [] and not SlashBooking.objects.exists()
    version = datanet_services.version_publish(datanet=datanet, actor=alice, notes="v1")
    assert version.row_count == 5  # Alice's 3, Dora's 1 and Charlie's accepted row

    transactions = LedgerTransaction.objects.count()
    chain_index_governance()  # the beat: index, enforce the rule, book done slashes
    booking = SlashBooking.objects.get()
    assert (booking.key, booking.amount, booking.datanet_id, booking.datanet_version) == (
        slash.evidence_hash, 5 * OPEN, datanet.pk, version.number)
    assert booking.slashed_user == charlie and booking.slash_tx_hash == slash.tx_hash
    # Pro rata to accepted rows in the version, 3 : 1; Charlie's own accepted row earns nothing from his slash.
    shares = {s.user_id: (s.rows, s.amount) for s in SlashShare.objects.filter(booking=booking)}
    assert shares == {alice.pk: (3, 15 * OPEN // 4), dora.pk: (1, 5 * OPEN // 4)}
    assert ledger.balance(kind=AccountKind.EARNINGS, user=alice) == 15 * OPEN // 4
    assert ledger.balance(kind=AccountKind.EARNINGS, user=dora) == 5 * OPEN // 4
    assert ledger.balance(kind=AccountKind.EARNINGS, user=charlie) == 0
    assert ledger.balance(kind=AccountKind.SLASHED_STAKES) == -5 * OPEN
    assert LedgerTransaction.objects.count() == transactions + 1
    assert booking.transaction.kind == LedgerTransaction.Kind.SLASH
    audit = AuditEvent.objects.get(action="rewards.slash_booked")
    assert audit.object_id == str(booking.pk) and audit.details["key"] == slash.evidence_hash
    assert audit.details["shares"] == {str(alice.pk): str(15 * OPEN // 4), str(dora.pk): str(5 * OPEN // 4)}
    assert ledger.ledger_check().ok, ledger.ledger_check().problems
    # Dora sees it as earnings waiting for the next epoch.
    assert earnings_for(user=dora)["totals"]["earned"] == earnings_for(user=dora)["totals"]["accruing"] == 5 * OPEN // 4
    assert nothing_to_claim(user=dora)[0] == "epoch_not_closed"

    # Once per slash: the beat again, the booking service again (even with other weights), nothing new.
    chain_index_governance()
    assert slashes_book() == []
    again = rewards_services.slash_book(key=slash.evidence_hash, datanet_id=datanet.pk, datanet_version=1,
                                        slashed_user_id=charlie.pk, amount=5 * OPEN, weights={dora.pk: 7})
    assert again == booking and LedgerTransaction.objects.count() == transactions + 1
    assert SlashShare.objects.count() == 2 and AuditEvent.objects.filter(action="rewards.slash_booked").count() == 1

    # The next epoch pays the shares with everything else the contributors earned.
    epoch = rewards_services.epoch_close()
    assert epoch.state == EpochState.CLOSED
    allocations = dict(PayoutAllocation.objects.filter(epoch=epoch).values_list("user_id", "amount"))
    assert allocations == {alice.pk: 15 * OPEN // 4, dora.pk: 5 * OPEN // 4}
    assert set(SlashShare.objects.values_list("epoch", flat=True)) == {epoch.pk}
    assert ledger.balance(kind=AccountKind.EARNINGS, user=alice) == 0
    assert ledger.balance(kind=AccountKind.PENDING, user=alice) == 15 * OPEN // 4
    assert ledger.ledger_check().ok, ledger.ledger_check().problems
    call_command("ledger_check")  # exits non-zero when the books do not balance
    assert rewards_services.epoch_close() is None  # frozen once: nothing left to pay


def test_the_slashed_contributor_is_excluded_and_bad_bookings_are_refused(governance, spam_world, alice, dora,
                                                                           charlie):
    datanet, _ = spam_world
    [slash] = stake_slashes_enforce()
    key = slash.evidence_hash
    refusals = {
        "weights": {charlie.pk: 1, alice.pk: 3},  # the slashed contributor among those paid
        "amount": 0,
        "key": "0x1234",
    }
    for field, value in refusals.items():
        kwargs = {"key": key, "datanet_id": datanet.pk, "datanet_version": 1, "slashed_user_id": charlie.pk,
                  "amount": 5 * OPEN, "weights": {alice.pk: 3, dora.pk: 1}, field: value}
        with pytest.raises(ValidationError) as refused:
            rewards_services.slash_book(**kwargs)
        assert field in refused.value.message_dict
    with pytest.raises(ValidationError, match="cannot share in their own slash"):
        rewards_services.slash_book(key=key, datanet_id=datanet.pk, datanet_version=1, slashed_user_id=charlie.pk,
                                    amount=5 * OPEN, weights={charlie.pk: 1})
    with pytest.raises(ValidationError, match="at least one honest contributor"):
        rewards_services.slash_book(key=key, datanet_id=datanet.pk, datanet_version=1, slashed_user_id=charlie.pk,
                                    amount=5 * OPEN, weights={})
    assert not SlashBooking.objects.exists() and ledger.balance(kind=AccountKind.SLASHED_STAKES) == 0

    # A version holding only the spammer's accepted rows has no honest contributor: nothing is booked.
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="reject", reason="Off topic",
                                    record_ids=list(datanet.records.exclude(contributor=charlie)
                                                    .values_list("pk", flat=True)))
    datanet_services.version_publish(datanet=datanet, actor=alice)
    assert slashes_book() == [] and not SlashBooking.objects.exists()
    assert StakeSlash.objects.get().state == SlashState.DONE  # still waiting, still in the pool on chain
    assert ledger.ledger_check().ok


def test_ledger_check_catches_a_slash_share_that_disagrees_with_its_booking(governance, spam_world, alice):
    datanet, _ = spam_world
    stake_slashes_enforce()
    datanet_services.version_publish(datanet=datanet, actor=alice)
    [booking] = slashes_book()
    SlashShare.objects.filter(booking=booking, user=alice).update(amount=1)
    check = ledger.ledger_check()
    assert not check.ok
    assert any(f"slash booking {booking.pk}: its shares add up to" in p for p in check.problems)
    assert any(p.startswith(f"earnings of user {alice.pk}: ledger") for p in check.problems)
