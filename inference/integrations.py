"""The other apps' public functions this app calls, in one place.

- credit: `rewards.selectors` (the payer's OPEN credit balance, base units; the page that adds credit) and
  `rewards.amounts.format_open` (an amount as people read it);
- receipts: `attribution.services.receipt_create` (raises `attribution.services.IndexNotReady`, or
  `ReceiptMismatch` when the inference id already carries a receipt for another model, requester or
  query) and `attribution.services.query_digest` (the canonical digest of what was asked and answered);
- fees: `rewards.services.fee_record` (holds the fee on the payer's credit in the request's transaction;
  rewards books it in a batch seconds later; raises `rewards.services.InsufficientCredit`).

Keeping the calls here keeps the inference services readable and gives one place to adapt when a
contract moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger("inference")


class ReceiptUnavailable(Exception):
    """No receipt could be made (index not built yet, or the attribution app failed)."""


class ReceiptMismatch(ReceiptUnavailable):
    """The receipt under this inference id was made for another model version, requester or query: it is
    not this inference's, and its shares must never split this inference's fee."""


class CreditShort(Exception):
    def __init__(self, message: str, *, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = needed, available


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    url: str
    # What the receipt was made for, checked against the inference record before its shares split a fee.
    model_version_hash: str = ""
    requester_id: int | None = None
    query_digest: str = ""
    shares_ppm: dict[int, int] = field(default_factory=dict)
    rows: dict[str, list[str]] = field(default_factory=dict)
    top_rows: list = field(default_factory=list)


def credit_balance(*, user) -> int:
    from rewards import selectors

    return selectors.credit_balance(user=user)


def deposit_page_url() -> str:
    """Where a caller short of credit adds some (linked from every short-credit error)."""
    from rewards import selectors

    return selectors.deposit_page_url()


def format_open(amount: int) -> str:
    """Base units as people read OPEN ('0.05')."""
    from rewards.amounts import format_open as rewards_format_open

    return rewards_format_open(amount)


def query_digest(input_text: str, output: str) -> str:
    """The canonical digest of {input, output}, the same one attribution receipts carry."""
    from attribution import services as attribution_services

    return attribution_services.query_digest(input_text, output)


def receipt_possible(*, model_version) -> bool:
    """Whether a receipt can be made for the model version now (its attribution index is ready); read from
    the version's own status, so the web tier never loads the index or the attribution engine."""
    return model_version.attribution_status == "ready"


def receipt_id_reserve() -> str:
    """A fresh receipt id (what `attribution.receipt_ids.new_receipt_id` makes), reserved for a queued receipt."""
    from attribution.receipt_ids import new_receipt_id

    return new_receipt_id()


def receipt_url(receipt_id: str) -> str:
    from django.urls import reverse

    return reverse("attribution:receipt", args=[str(receipt_id)])


def receipt_create(*, model_version, input_text: str, output: str, inference_id: str, requester=None,
                   receipt_id: str | None = None) -> Receipt:
    """``requester`` (who asked) may read the receipt's input and output; others see only the rows.
    ``receipt_id``: the id reserved for this inference's receipt when its answer was given (queued receipts)."""
    from attribution import services as attribution_services

    try:
        receipt = attribution_services.receipt_create(
            model_version=model_version, input_text=input_text, output=output, inference_id=inference_id,
            requester=requester, receipt_id=receipt_id)
    except attribution_services.ReceiptMismatch as exc:
        raise ReceiptMismatch(str(exc)) from exc
    except attribution_services.IndexNotReady as exc:
        raise ReceiptUnavailable(str(exc) or "The attribution index of this model is not built yet.") from exc
    shares = {int(k): int(v) for k, v in (receipt.contributor_shares_ppm or {}).items()}
    rows = {str(k): list(v) for k, v in receipt.contributor_rows.items()}
    return Receipt(receipt_id=str(receipt.receipt_id), url=receipt_url(receipt.receipt_id),
                   model_version_hash=receipt.model_version_hash, requester_id=receipt.requester_id,
                   query_digest=receipt.query_digest,
                   shares_ppm=shares, rows=rows, top_rows=list(receipt.top_rows))


def receipt_mismatches(receipt: Receipt, *, model_version_hash: str, requester_id, query_digest: str) -> list[str]:
    """What of the receipt differs from the inference it is meant to settle (empty: it is that inference's)."""
    return [name for name, same in (
        ("model version", receipt.model_version_hash == model_version_hash),
        ("requester", receipt.requester_id == requester_id),
        ("query", receipt.query_digest == query_digest),
    ) if not same]


def fee_hold(*, inference_id: str, payer, model_version, fee: int) -> None:
    """Hold a queued answer's fee on the payer's credit now (its split follows with the receipt:
    `fee_attach`). Raises `CreditShort` when the credit does not cover it: the answer is then refused."""
    from rewards import services as rewards_services

    try:
        rewards_services.fee_record(inference_id=inference_id, payer=payer, model_owner=model_version.owner,
                                    fee=int(fee), contributor_shares={}, model_version_hash=model_version.version_hash,
                                    awaiting_receipt=True)
    except rewards_services.InsufficientCredit as exc:
        raise CreditShort(str(exc), needed=exc.needed, available=exc.available) from exc


def fee_attach(*, inference_id: str, payer, model_version, receipt: Receipt | None, query_digest: str) -> bool:
    """Split a held fee by `receipt` (only if it is this inference's, as `fee_settle` checks). False when no
    fee was held for the inference (an answer queued before fees were held at answer time)."""
    from rewards import services as rewards_services

    if receipt is not None:
        differs = receipt_mismatches(receipt, model_version_hash=model_version.version_hash, requester_id=payer.pk,
                                     query_digest=query_digest)
        if differs:
            logger.warning("receipt %s is not inference %s's (different %s): fee settled without it",
                           receipt.receipt_id, inference_id, ", ".join(differs))
            receipt = None
    held = rewards_services.fee_attach_receipt(
        inference_id=inference_id, contributor_shares=dict(receipt.shares_ppm) if receipt else {},
        receipt_id=receipt.receipt_id if receipt else None,
        contributor_rows={int(k): v for k, v in receipt.rows.items()} if receipt else None)
    return held is not None


def fee_settle(*, inference_id: str, payer, model_version, fee: int, receipt: Receipt | None,
               query_digest: str) -> None:
    """Record the fee, split by `receipt`'s shares only if the receipt is this inference's (model version,
    payer as requester, `query_digest`); otherwise it is settled as if there were no receipt."""
    from rewards import services as rewards_services

    if receipt is not None:
        differs = receipt_mismatches(receipt, model_version_hash=model_version.version_hash, requester_id=payer.pk,
                                     query_digest=query_digest)
        if differs:
            logger.warning("receipt %s is not inference %s's (different %s): fee settled without it",
                           receipt.receipt_id, inference_id, ", ".join(differs))
            receipt = None
    try:
        rewards_services.fee_record(
            inference_id=inference_id, payer=payer, model_owner=model_version.owner, fee=int(fee),
            contributor_shares=dict(receipt.shares_ppm) if receipt else {},
            model_version_hash=model_version.version_hash, receipt_id=receipt.receipt_id if receipt else None,
            contributor_rows={int(k): v for k, v in receipt.rows.items()} if receipt else None,
        )
    except rewards_services.InsufficientCredit as exc:
        raise CreditShort(str(exc), needed=exc.needed, available=exc.available) from exc
