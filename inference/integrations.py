"""The other apps' public functions this app calls, in one place.

- credit: `rewards.selectors` (the payer's OPEN credit balance, base units);
- receipts: `attribution.services.receipt_create` (raises `attribution.services.IndexNotReady`);
- fees: `rewards.services.fee_record` (holds the fee on the payer's credit in the request's transaction;
  rewards books it in a batch seconds later; raises `rewards.services.InsufficientCredit`).

Keeping the calls here keeps the inference services readable and gives one place to adapt when a
contract moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ReceiptUnavailable(Exception):
    """No receipt could be made (index not built yet, or the attribution app failed)."""


class CreditShort(Exception):
    def __init__(self, message: str, *, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = needed, available


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    url: str
    shares_ppm: dict[int, int] = field(default_factory=dict)
    rows: dict[str, list[str]] = field(default_factory=dict)
    top_rows: list = field(default_factory=list)


def credit_balance(*, user) -> int:
    from rewards import selectors

    return selectors.credit_balance(user=user)


def receipt_create(*, model_version, input_text: str, output: str, inference_id: str, requester=None) -> Receipt:
    """``requester`` (who asked) may read the receipt's input and output; others see only the rows."""
    from django.urls import reverse

    from attribution import services as attribution_services

    try:
        receipt = attribution_services.receipt_create(
            model_version=model_version, input_text=input_text, output=output, inference_id=inference_id,
            requester=requester)
    except attribution_services.IndexNotReady as exc:
        raise ReceiptUnavailable(str(exc) or "The attribution index of this model is not built yet.") from exc
    shares = {int(k): int(v) for k, v in (receipt.contributor_shares_ppm or {}).items()}
    rows = {str(k): list(v) for k, v in receipt.contributor_rows.items()}
    return Receipt(receipt_id=str(receipt.receipt_id),
                   url=reverse("attribution:receipt", args=[str(receipt.receipt_id)]),
                   shares_ppm=shares, rows=rows, top_rows=list(receipt.top_rows))


def fee_settle(*, inference_id: str, payer, model_version, fee: int, receipt: Receipt | None) -> None:
    from rewards import services as rewards_services

    try:
        rewards_services.fee_record(
            inference_id=inference_id, payer=payer, model_owner=model_version.owner, fee=int(fee),
            contributor_shares=dict(receipt.shares_ppm) if receipt else {},
            model_version_hash=model_version.version_hash, receipt_id=receipt.receipt_id if receipt else None,
            contributor_rows={int(k): v for k, v in receipt.rows.items()} if receipt else None,
        )
    except rewards_services.InsufficientCredit as exc:
        raise CreditShort(str(exc), needed=exc.needed, available=exc.available) from exc
