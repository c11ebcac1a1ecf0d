"""Slashed stakes become the honest contributors' earnings.

When governance's slash rule takes part of a contributor's stake on a Datanet, the staking contract moves that
OPEN into the Datanet's reward pool on chain. `slash_book(...)` books it in the ledger, once per slash (keyed by
the slash's evidence hash, the id the contract takes once): one transaction from the SLASHED_STAKES system
account (which goes negative by what slashes brought in, as deposits and grants do) to the EARNINGS of the
Datanet's honest contributors, pro rata to their accepted rows in its latest version (the caller weighs them and
leaves the slashed contributor out). The shares are frozen by the next epoch close like fee shares, and
`ledger_check` proves each booking's entries equal its shares and its amount.
"""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.services import AuditAction, audit_record

from .. import ledger
from ..ledger import format_open
from ..models import AccountKind, LedgerTransaction, SlashBooking, SlashShare
from ..splitting import largest_remainder

EVIDENCE_HASH = re.compile(r"^0x[0-9a-f]{64}$")
AUDITED_SHARES = 100  # shares listed in the audit row (the count is always there)


def _checked(*, key, amount, weights, slashed_user_id) -> dict[int, int]:
    if not isinstance(key, str) or not EVIDENCE_HASH.match(key):
        raise ValidationError({"key": f"Give the slash's evidence hash as 0x and 64 lowercase hex digits, not {key!r}."})
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError({"amount": f"The slashed amount is a positive int of base units, not {amount!r}."})
    if not isinstance(weights, dict) or not weights:
        raise ValidationError({"weights": "Name at least one honest contributor with accepted rows: nobody to pay."})
    cleaned = {}
    for user_id, rows in weights.items():
        if isinstance(user_id, bool) or not isinstance(user_id, int) or isinstance(rows, bool) \
                or not isinstance(rows, int) or rows <= 0:
            raise ValidationError({"weights": f"Weights are {{user id: accepted rows > 0}}; got {user_id!r}: {rows!r}."})
        cleaned[user_id] = rows
    if slashed_user_id in cleaned:
        raise ValidationError({"weights": "The slashed contributor cannot share in their own slash."})
    return dict(sorted(cleaned.items()))


def slash_book(*, key: str, datanet_id: int, datanet_version: int, slashed_user_id: int | None, amount: int,
               weights: dict[int, int], slash_tx_hash: str = "") -> SlashBooking:
    """Book `amount` OPEN slashed into Datanet `datanet_id`'s pool as earnings of its honest contributors, split
    pro rata to `weights` ({user id: accepted rows in version `datanet_version`}) by largest remainder. Once per
    `key` (the slash's evidence hash): a second or concurrent call returns the first booking and books nothing.
    The ledger transaction, the shares and the audit row are written in one database transaction."""
    weights = _checked(key=key, amount=amount, weights=weights, slashed_user_id=slashed_user_id)
    existing = SlashBooking.objects.filter(key=key).first()
    if existing is not None:
        return existing
    parts = {user_id: part for user_id, part in largest_remainder(amount, list(weights.items())).items() if part}
    try:
        with transaction.atomic(durable=True):
            accounts = ledger.accounts_get([(AccountKind.SLASHED_STAKES, None)]
                                           + [(AccountKind.EARNINGS, user_id) for user_id in parts])
            lines = [(accounts[ledger.account_key(AccountKind.SLASHED_STAKES)], -amount)]
            lines += [(accounts[ledger.account_key(AccountKind.EARNINGS, user_id)], part)
                      for user_id, part in parts.items()]
            txn = ledger.post(idempotency_key=f"slash:{key}", kind=LedgerTransaction.Kind.SLASH, lines=lines,
                              memo=f"slash {key[:12]} on datanet {datanet_id}: {format_open(amount)} OPEN")
            booking = SlashBooking.objects.create(
                key=key, datanet_id=datanet_id, datanet_version=datanet_version, slashed_user_id=slashed_user_id,
                amount=amount, slash_tx_hash=slash_tx_hash or "", transaction=txn)
            SlashShare.objects.bulk_create([SlashShare(booking=booking, user_id=user_id, rows=weights[user_id],
                                                       amount=part) for user_id, part in parts.items()])
            audit_record(actor=None, action=AuditAction.REWARDS_SLASH_BOOKED, target=booking, details={
                "key": key, "datanet_id": datanet_id, "datanet_version": datanet_version, "amount": str(amount),
                "slashed_user": slashed_user_id, "slash_tx_hash": slash_tx_hash, "contributors": len(parts),
                "shares": {str(u): str(p) for u, p in list(parts.items())[:AUDITED_SHARES]}})
    except IntegrityError:  # booked by a concurrent run first (the key and the ledger key are unique)
        return SlashBooking.objects.get(key=key)
    return booking
