"""Reads for the other apps, which never import `rewards.models` (tests/foundation/test_app_boundaries.py).

Slashes already booked as contributors' earnings (governance), the addresses a user linked and who linked an
address, an epoch and the payouts it published (notifications), everyone's holds waiting for review, and a
user's holds a curator confirmed (governance: confirmed harmful rows count against a stake).
"""

from ..models import EarningsHold, Epoch, HoldState, PayoutAllocation, SlashBooking, Wallet


def slash_bookings(*, keys) -> dict:
    """{evidence hash: SlashBooking} for the slashes among `keys` already booked as contributors' earnings."""
    return {b.key: b for b in SlashBooking.objects.filter(key__in=list(keys))}


def wallet_addresses_of(*, user) -> list[str]:
    """Every address the user ever linked (payout wallets in effect, pending and past)."""
    return list(Wallet.objects.filter(user=user).values_list("address", flat=True))


def wallet_owner(*, address: str):
    """The user who linked this address (any letter case), or None."""
    wallet = Wallet.objects.filter(address__iexact=address).select_related("user").first()
    return wallet.user if wallet else None


def epoch_by_id(*, pk) -> Epoch | None:
    return Epoch.objects.filter(pk=pk).first()


def epoch_allocations(*, epoch) -> list[tuple[int, int, str]]:
    """(user id, amount in base units, address) of each payout the epoch published."""
    return list(PayoutAllocation.objects.filter(epoch=epoch).values_list("user_id", "amount", "address"))


def earnings_holds_held() -> list[EarningsHold]:
    """Everyone's holds waiting for review, with their users, newest first."""
    return list(EarningsHold.objects.filter(state=HoldState.HELD).select_related("user"))


def earnings_holds_confirmed(*, user) -> list[EarningsHold]:
    """The user's harm holds a curator confirmed (the valuation's harm upheld), oldest decision first."""
    return list(EarningsHold.objects.filter(user=user, state=HoldState.CONFIRMED).order_by("decided_at", "id"))
