"""Reads of a user's earnings: totals, per-inference shares with their claim status, pages and the chart.

`earnings_for` (totals, items, per-model sums, holds), the shares as a queryset and as items for the API,
the rewards page's paginated earnings and paid-for answers (with models by name and receipt addresses),
and the OPEN earned per day for its chart.
"""

from collections import defaultdict

from .. import ledger
from ..models import (
    AccountKind,
    EarningsHold,
    HoldState,
    PayoutLeaf,
    Settlement,
    SettlementShare,
    ShareRole,
    SlashShare,
)
from .claims import POSTED, _booked_by_address, earnings_holds_open


def _hold_summary(hold: EarningsHold) -> dict:
    evidence = hold.evidence or {}
    return {
        "id": hold.pk, "state": hold.state, "model_version_hash": hold.model_version_hash, "reason": hold.reason,
        "rows": hold.rows, "row_count": evidence.get("row_count", len(hold.rows)), "harm": evidence.get("harm"),
        "threshold": evidence.get("threshold"), "created_at": hold.created_at, "decided_at": hold.decided_at,
        "decision_note": hold.decision_note, "withheld_amount": hold.withheld_amount,
        "withheld_amount_open": ledger.format_open(hold.withheld_amount),
    }


def _share_status(share, cumulative_by_epoch_address, booked, held: bool = False) -> str:
    epoch = share.epoch
    if epoch is None:
        if share.withheld_by_id is not None:
            return "withheld after review"
        return "held for review" if held else "accruing"
    if epoch.state not in POSTED:
        return f"epoch {epoch.number}: publishing"
    key = (epoch.pk, share.user_id)
    address, cumulative = cumulative_by_epoch_address.get(key, ("", 0))
    return "paid" if address and booked.get(address, 0) >= cumulative else "claimable"


def _shares_newest_first(*, user):
    return (SettlementShare.objects.filter(user=user).select_related("settlement", "epoch")
            .order_by("-settlement__created_at", "-id"))


def _earning_items(shares, *, user, held: bool) -> list[dict]:
    """One dict per share: the inference, its model, receipt, role, amount, rows, epoch and claim status."""
    leaves = PayoutLeaf.objects.filter(user=user).values_list("epoch_id", "user_id", "address", "cumulative_amount")
    cumulative = {(e, u): (a, c) for e, u, a, c in leaves}
    booked = _booked_by_address({a for a, _ in cumulative.values()})
    return [{
        "id": s.pk, "inference_id": s.settlement.inference_id, "model_version_hash": s.settlement.model_version_hash,
        "receipt_id": s.settlement.receipt_id, "role": s.role, "ppm": s.ppm, "amount": s.amount,
        "amount_open": ledger.format_open(s.amount), "rows": s.rows, "created_at": s.settlement.created_at,
        "epoch": s.epoch.number if s.epoch else None, "status": _share_status(s, cumulative, booked, held=held),
    } for s in shares]


def earning_shares(*, user):
    """The user's shares of fees, newest first: a queryset for the API to paginate (`earning_items` turns a
    page of it into items)."""
    return _shares_newest_first(user=user)


def earning_items(shares, *, user) -> list[dict]:
    """`earnings_for`'s items for these shares (one page of `earning_shares`)."""
    return _earning_items(list(shares), user=user, held=bool(earnings_holds_open(user=user)))


def earnings_for(*, user, limit: int = 200) -> dict:
    """Totals, per-inference rows (what, from which rows, which epoch, claim status) and per-model sums.

    Unfrozen earnings are split three ways: `withheld` (shares a confirmed harm hold withheld: never
    paid), then `held` (the rest, while the user has an open hold: it waits for the curator) or
    `accruing` (the rest otherwise: the next epoch pays it). `holds` lists the open and confirmed holds
    with their reason and flagged rows."""
    shares = list(_shares_newest_first(user=user)[:limit])
    open_holds = earnings_holds_open(user=user)
    items = _earning_items(shares, user=user, held=bool(open_holds))
    all_shares = SettlementShare.objects.filter(user=user)
    by_model = ledger.grouped_sums(all_shares.filter(role=ShareRole.CONTRIBUTOR), "settlement__model_version_hash")
    owner_revenue = ledger.grouped_sums(all_shares.filter(role=ShareRole.OWNER), "settlement__model_version_hash")
    totals = {
        "earned": ledger.sum_amounts(all_shares) + ledger.sum_amounts(SlashShare.objects.filter(user=user)),
        "accruing": ledger.balance(kind=AccountKind.EARNINGS, user=user)
        + ledger.balance(kind=AccountKind.OWNER_EARNINGS, user=user),
        "pending": ledger.balance(kind=AccountKind.PENDING, user=user),
        "paid_out": ledger.balance(kind=AccountKind.PAID_OUT, user=user),
        "credit": ledger.balance(kind=AccountKind.CREDIT, user=user),
    }
    totals["credit_held"] = totals["credit"] - ledger.credit_available(user_id=user.pk)
    totals["withheld"] = ledger.sum_amounts(all_shares.filter(epoch__isnull=True, withheld_by__isnull=False))
    unfrozen = totals["accruing"] - totals["withheld"]
    totals["held"], totals["accruing"] = (unfrozen, 0) if open_holds else (0, unfrozen)
    confirmed = EarningsHold.objects.filter(user=user, state=HoldState.CONFIRMED).order_by("-decided_at", "-id")
    return {
        "holds": [_hold_summary(h) for h in open_holds],
        "withheld_holds": [_hold_summary(h) for h in confirmed[:50]],
        "totals": totals,
        "totals_open": {k: ledger.format_open(v) for k, v in totals.items()},
        "items": items,
        "by_model": [{"model_version_hash": m, "amount": a, "amount_open": ledger.format_open(a)}
                     for m, a in sorted(by_model.items(), key=lambda kv: -kv[1])],
        "owner_revenue": [{"model_version_hash": m, "amount": a, "amount_open": ledger.format_open(a)}
                          for m, a in sorted(owner_revenue.items(), key=lambda kv: -kv[1])],
    }


# --- The rewards page: paginated lists, models by name, the earnings chart ------------------------------

PAGE_SIZE = 25


def model_names_by_hash(*, hashes) -> dict[str, dict]:
    """{model version hash: {"name", "url"}} for the hashes of registered models (others are left out)."""
    from models_registry import selectors as registry_selectors

    names = {}
    for version_hash in sorted({h for h in hashes if h}):
        version = registry_selectors.model_version_by_hash(version_hash=version_hash)
        if version is not None:
            names[version_hash] = {"name": version.name, "url": version.get_absolute_url()}
    return names


def with_model_names(items: list[dict]) -> list[dict]:
    """The items (each with a `model_version_hash`) with `model_name` and `model_url` added (empty for a
    hash no registered model has)."""
    names = model_names_by_hash(hashes=[item["model_version_hash"] for item in items])
    for item in items:
        known = names.get(item["model_version_hash"], {})
        item["model_name"], item["model_url"] = known.get("name", ""), known.get("url", "")
    return items


def _receipt_url(receipt_id: str) -> str:
    from django.urls import reverse

    return reverse("attribution:receipt", args=[receipt_id]) if receipt_id else ""


def earnings_page(*, user, page_number, per_page: int = PAGE_SIZE):
    """One page (a Django `Page`) of the user's earnings, one item per inference share, newest first: as
    `earnings_for`'s items, plus the model's name and the receipt's address. A bad page number gives the
    nearest real page."""
    from django.core.paginator import Paginator

    page = Paginator(_shares_newest_first(user=user), per_page).get_page(page_number)
    items = _earning_items(list(page.object_list), user=user, held=bool(earnings_holds_open(user=user)))
    for item in items:
        item["receipt_url"] = _receipt_url(item["receipt_id"])
    page.object_list = with_model_names(items)
    return page


def receipts_page(*, user, page_number, per_page: int = PAGE_SIZE):
    """One page (a Django `Page`) of the answers the user paid for, newest settled first: when, the model,
    the fee and its attribution receipt. Fees still waiting for their settlement batch are not listed."""
    from django.core.paginator import Paginator

    settlements = Settlement.objects.filter(payer=user).order_by("-created_at", "-id")
    page = Paginator(settlements, per_page).get_page(page_number)
    page.object_list = with_model_names([{
        "inference_id": s.inference_id, "created_at": s.created_at, "model_version_hash": s.model_version_hash,
        "fee": s.fee, "fee_open": ledger.format_open(s.fee), "receipt_id": s.receipt_id,
        "receipt_url": _receipt_url(s.receipt_id),
    } for s in page.object_list])
    return page


def earnings_chart(*, user, days: int = 90, today=None) -> dict:
    """OPEN earned per UTC day, from the first day with earnings in the last `days` days to today, in the
    insights dashboards' chart format (static/js/insights.js draws it with the vendored Chart.js), with the
    exact amounts for the table beside it. `series` is [(date, base units)] of every day (the no-script
    SVG draws it); `empty` when nothing was earned in that time."""
    from datetime import UTC, datetime, time, timedelta

    from django.utils import timezone

    today = today or timezone.now().astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    totals: dict = defaultdict(int)
    for created, amount in (SettlementShare.objects.filter(user=user, settlement__created_at__gte=since)
                            .values_list("settlement__created_at", "amount")):
        totals[created.astimezone(UTC).date()] += int(amount)
    if not totals:
        return {"empty": True, "days": days}
    first = min(totals)
    series = [(first + timedelta(days=i), totals.get(first + timedelta(days=i), 0))
              for i in range((today - first).days + 1)]
    labels = [f"{day:%d %b %Y}" for day, _ in series]
    total = sum(totals.values())
    best_day, best = max(series, key=lambda point: (point[1], point[0]))
    return {
        "empty": False, "days": days, "series": series, "unit": "OPEN",
        "summary": (f"OPEN earned per day from {labels[0]} to {labels[-1]}: {ledger.format_open(total)} OPEN in "
                    f"total, most on {best_day:%d %b %Y} ({ledger.format_open(best)} OPEN)."),
        "rows": [{"label": label, "amount": amount, "amount_open": ledger.format_open(amount)}
                 for label, (_, amount) in zip(labels, series, strict=True)],
        "chart_json": {"labels": labels, "series": [{"label": "Earned", "values": [amount / 10**18 for _, amount in series]}],
                       "synthetic": [], "kind": "bar", "stacked": False, "unit": "OPEN"},
    }
