"""Booking a slashed stake as contributors' earnings (`rewards.services.slash_book`): exact largest-remainder
shares, once per evidence hash, and the epoch close pays the shares like fee shares (a harm hold makes them
wait too). The end-to-end slash on chain is tests/governance/test_slash_rewards.py."""

from rewards import ledger, services
from rewards.holds import earnings_hold_for_harm, earnings_hold_release
from rewards.models import AccountKind, LedgerTransaction, PayoutAllocation, SlashBooking, SlashShare

KEY = "0x" + "5a" * 32


def _book(users, amount, *, key=KEY, slashed=None):
    return services.slash_book(key=key, datanet_id=7, datanet_version=2, slashed_user_id=slashed,
                               amount=amount, weights={user.pk: 1 for user in users})


def test_shares_are_exact_and_a_key_books_once(dora, charlie, staff, make_user):
    erin = make_user("erin")  # outside the cast: a third contributor, for three equal weights
    booking = _book([charlie, dora, erin], 10)  # 10 base units over three equal weights
    parts = dict(SlashShare.objects.filter(booking=booking).values_list("user_id", "amount"))
    assert sorted(parts.values(), reverse=True) == [4, 3, 3] and sum(parts.values()) == 10
    assert parts[min(u.pk for u in (dora, erin, charlie))] == 4  # the leftover unit: the first in user-id order
    assert ledger.balance(kind=AccountKind.SLASHED_STAKES) == -10
    assert _book([staff], 99) == booking  # the same evidence hash: the first booking, nothing new
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.SLASH).count() == 1
    # One base unit over three: only the first gets a share row; the books still balance.
    tiny = _book([dora, erin, charlie], 1, key="0x" + "6b" * 32)
    assert SlashShare.objects.filter(booking=tiny).count() == 1
    assert SlashBooking.objects.count() == 2 and ledger.ledger_check().ok


def test_the_epoch_close_pays_slash_shares_and_a_held_contributor_waits(chain, dora, charlie, staff, link_wallet):
    link_wallet(dora, chain.wallets[0])
    link_wallet(charlie, chain.wallets[1])
    services.slash_book(key=KEY, datanet_id=7, datanet_version=1, slashed_user_id=None, amount=9 * 10**18,
                        weights={dora.pk: 2, charlie.pk: 1})
    hold = earnings_hold_for_harm(user_id=charlie.pk, model_version_hash="ab" * 32, rows=["r1"], harm=1.0,
                                  threshold=0.5, reason="harmful rows")
    first = services.epoch_close()
    assert dict(PayoutAllocation.objects.filter(epoch=first).values_list("user_id", "amount")) == {
        dora.pk: 6 * 10**18}
    assert ledger.balance(kind=AccountKind.EARNINGS, user=charlie) == 3 * 10**18  # held: not in the epoch
    assert ledger.ledger_check().ok
    earnings_hold_release(hold=hold, actor=staff, note="no harm after all")
    second = services.epoch_close()
    assert dict(PayoutAllocation.objects.filter(epoch=second).values_list("user_id", "amount")) == {
        charlie.pk: 3 * 10**18}
    assert not SlashShare.objects.filter(epoch__isnull=True).exists()
    assert ledger.ledger_check().ok
