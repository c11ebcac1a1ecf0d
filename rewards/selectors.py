"""Reads for rewards: earnings, claims with proofs, the fee policy and the admin overview."""

from collections import defaultdict

from django.conf import settings

from . import ledger
from .models import (
    AccountKind,
    ChainClaim,
    EarningsHold,
    Epoch,
    EpochState,
    FeePolicyVersion,
    HoldState,
    PayoutLeaf,
    PendingFee,
    ReconciliationIssue,
    Settlement,
    SettlementShare,
    ShareRole,
    SlashBooking,
    SlashShare,
    Wallet,
)

POSTED = (EpochState.ROOT_POSTED, EpochState.RELAYED, EpochState.CLOSED)


def fee_policy_public() -> dict:
    from .services import fee_policy_current

    current = fee_policy_current()
    return {
        "version": current.version,
        "protocol_bps": current.protocol_bps,
        "owner_bps": current.owner_bps,
        "contributors_bps": current.contributors_bps,
        "fallback": current.fallback,
        "rounding": "largest remainder: every base unit is assigned",
        "history": [
            {"version": v.version, "protocol_bps": v.protocol_bps, "owner_bps": v.owner_bps,
             "contributors_bps": v.contributors_bps, "fallback": v.fallback, "created_at": v.created_at.isoformat()}
            for v in FeePolicyVersion.objects.order_by("-version")[:50]
        ],
    }


def wallet_state(*, user, now=None) -> dict:
    from django.utils import timezone

    now = now or timezone.now()
    wallets = list(Wallet.objects.filter(user=user).order_by("-effective_at"))
    current = next((w for w in wallets if w.effective_at <= now), None)
    pending = next((w for w in wallets if w.effective_at > now), None)
    return {"current": current, "pending": pending, "all": wallets}


def _booked_by_address(addresses) -> dict[str, int]:
    return ledger.grouped_sums(ChainClaim.objects.filter(address__in=list(addresses), transaction__isnull=False),
                               "address")


def claims_for(*, user) -> list[dict]:
    """Per address of the user: the latest posted leaf (cumulative amount + proof) and what is left."""
    leaves = {}
    for leaf in (PayoutLeaf.objects.filter(user=user, epoch__state__in=POSTED)
                 .select_related("epoch", "epoch__deployment").order_by("epoch__number")):
        leaves[leaf.address] = leaf  # the latest epoch wins
    booked = _booked_by_address(leaves)
    claims = []
    for address, leaf in leaves.items():
        deployment = leaf.epoch.deployment
        claimed = booked.get(address, 0)
        claims.append({
            "address": address, "epoch": leaf.epoch.number, "deployment_id": deployment.pk,
            "cumulative_amount": leaf.cumulative_amount, "claimed": claimed,
            "claimable": max(0, leaf.cumulative_amount - claimed), "proof": leaf.proof,
            "distributor": deployment.distributor_address, "token": deployment.token_address,
            "chain_id": deployment.chain_id, "root": leaf.epoch.root,
        })
    return claims


def deposit_page_url() -> str:
    """The absolute address of the page that explains how to add inference credit (linked from every
    "not enough credit" refusal)."""
    from urllib.parse import urljoin

    from django.urls import reverse

    return urljoin(settings.SITE_URL, reverse("rewards:deposit"))


def deposit_overview(*, user) -> dict:
    """What the deposit page shows: where to send OPEN (the deposit address of the recorded deployment),
    which of the user's addresses are credited (their linked wallets), how far the deposit indexer has
    scanned, the credit and every deposit and grant credited to the user. Reads the database only."""
    from .models import ChainCursor, ChainDeployment, ChainDeposit, CreditGrant

    deployment = ChainDeployment.objects.order_by("-created_at", "-id").first()
    cursor = ChainCursor.objects.filter(deployment=deployment, name="deposits").first() if deployment else None
    scanned = cursor.next_block - 1 if cursor and cursor.next_block > deployment.deployed_at_block else None
    deposits = list(ChainDeposit.objects.filter(user=user).order_by("-block_number", "-log_index")[:100])
    grants = list(CreditGrant.objects.filter(user=user).order_by("-created_at", "-id")[:100])
    available = ledger.credit_available(user_id=user.pk)
    balance = ledger.balance(kind=AccountKind.CREDIT, user=user)
    return {
        "deposit_address": deployment.deposit_address if deployment else (settings.REWARDS_DEPOSIT_ADDRESS or None),
        "token_address": deployment.token_address if deployment else (settings.REWARDS_TOKEN_ADDRESS or None),
        "chain_id": deployment.chain_id if deployment else settings.CHAIN_ID,
        "confirmations": max(1, settings.CHAIN_CONFIRMATIONS),
        "last_block_scanned": scanned,
        "wallet": wallet_state(user=user),
        "credit": {"balance": balance, "available": available, "held": balance - available},
        "deposits": deposits,
        "deposited_total": ledger.sum_amounts(ChainDeposit.objects.filter(user=user)),
        "grants": grants,
        "starter_grant": _starter_grant_amount(),
    }


def _starter_grant_amount() -> int:
    from .services import starter_grant_amount

    try:
        return starter_grant_amount()
    except Exception:  # noqa: BLE001 - a bad setting is reported by `manage.py check`; the page still renders
        return 0


def claim_relays_for(*, user, limit: int = 5) -> list:
    """The user's latest "Claim for me" requests, newest first (their status, for /rewards/claim/)."""
    from .models import ClaimRelay

    return list(ClaimRelay.objects.filter(user=user).order_by("-requested_at", "-id")[:limit])


def nothing_to_claim(*, user) -> tuple[str, str]:
    """Why a user with nothing claimable has nothing to claim: (reason, message for them). Reasons:
    `nothing_earned`, `epoch_not_closed` (earnings wait for an epoch to freeze or to be published; with
    no payout wallet they are not frozen at all), `held` (a harm hold keeps them out of epochs),
    `already_claimed`, `withheld`. Call it when `claims_for` has nothing claimable."""
    from .models import PayoutAllocation

    shares = SettlementShare.objects.filter(user=user)
    slash_shares = SlashShare.objects.filter(user=user)  # their part of slashed stakes, paid like fee shares
    earned = ledger.sum_amounts(shares) + ledger.sum_amounts(slash_shares)
    if earned == 0:
        return "nothing_earned", ("Nothing to claim: you have not earned any OPEN yet. You earn when answers use "
                                  "your rows or a model you own.")
    claimed = ledger.balance(kind=AccountKind.PAID_OUT, user=user)
    publishing = ledger.sum_amounts(PayoutAllocation.objects.filter(user=user).exclude(epoch__state__in=POSTED))
    unfrozen = (ledger.sum_amounts(shares.filter(epoch__isnull=True, withheld_by__isnull=True))
                + ledger.sum_amounts(slash_shares.filter(epoch__isnull=True)))
    already = f" Everything published before ({ledger.format_open(claimed)} OPEN) has been claimed." if claimed else ""
    if publishing:
        return "epoch_not_closed", (f"Nothing to claim yet: {ledger.format_open(publishing)} OPEN is in an epoch that "
                                    f"is still being published on chain; it becomes claimable when the epoch "
                                    f"closes.{already}")
    if unfrozen and earnings_holds_open(user=user):
        return "held", (f"Nothing to claim yet: {ledger.format_open(unfrozen)} OPEN is held for review (see "
                        f"“Earnings held for review”) and is not in any epoch until a curator decides.{already}")
    if unfrozen:
        wallet = "" if wallet_state(user=user)["current"] else (
            " Link a payout wallet first: earnings are only published for accounts with one.")
        return "epoch_not_closed", (f"Nothing to claim yet: {ledger.format_open(unfrozen)} OPEN you earned is waiting "
                                    f"for the next epoch to close.{wallet}{already}")
    if claimed:
        return "already_claimed", (f"Nothing to claim: everything published for you "
                                   f"({ledger.format_open(claimed)} OPEN) has already been claimed.")
    return "withheld", "Nothing to claim: your earnings were withheld after review."


def earnings_holds_open(*, user) -> list[EarningsHold]:
    """The user's open harm holds (newest first): while there is one, none of their earnings go into an
    epoch."""
    return list(EarningsHold.objects.filter(user=user, state=HoldState.HELD).order_by("-created_at", "-id"))


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


def credit_balance(*, user) -> int:
    """The user's spendable OPEN credit, in base units (what an inference is paid from): the balance
    less the fees of inferences recorded and not settled yet."""
    return ledger.credit_available(user_id=user.pk)


def fee_for(*, inference_id: str, user) -> dict | None:
    """One inference's fee and its split, for its payer, the model's owner or staff (None otherwise, or
    when there is no such fee). `status` is "pending" (held, booked by the next batch: the split shown
    is the one it will be booked with) or "settled"."""
    from .services import fee_split

    settlement = Settlement.objects.filter(inference_id=str(inference_id)).select_related(
        "policy", "transaction").first()
    pending = None if settlement else PendingFee.objects.filter(inference_id=str(inference_id)).select_related(
        "policy").first()
    charge = settlement or pending
    if charge is None or not (user.is_staff or user.pk in (charge.payer_id, charge.model_owner_id)):
        return None
    if settlement is not None:
        contributors = dict(settlement.shares.filter(role=ShareRole.CONTRIBUTOR).values_list("user_id", "amount"))
        protocol, owner = settlement.protocol_amount, settlement.owner_amount
    else:
        split = fee_split(fee=pending.fee, policy=pending.policy,
                          contributor_shares={int(k): v for k, v in pending.contributor_shares.items()})
        protocol, owner, contributors = split.protocol, split.owner, split.contributors
    return {
        "inference_id": charge.inference_id, "status": "settled" if settlement else "pending", "fee": charge.fee,
        "protocol": protocol, "owner": owner,
        "contributors": [{"user_id": uid, "amount": amount} for uid, amount in sorted(contributors.items())],
        "policy_version": charge.policy.version, "model_version_hash": charge.model_version_hash,
        "recorded_at": charge.created_at,
        "settled_at": settlement.transaction.created_at if settlement else None,
    }


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


def admin_overview() -> dict:
    system = ledger.system_balances()
    pending = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.PENDING))
    paid = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.PAID_OUT))
    accruing = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(
        account__kind__in=[AccountKind.EARNINGS, AccountKind.OWNER_EARNINGS]))
    credit = ledger.sum_amounts(ledger.LedgerEntry.objects.filter(account__kind=AccountKind.CREDIT))
    fees_pending = ledger.sum_amounts(PendingFee.objects.all(), "fee")
    figures = {"treasury": system["treasury"], "deposits": -system["deposits"], "grants": -system["grants"],
               "credit": credit, "accruing": accruing, "pending": pending, "paid_out": paid,
               "fees_pending": fees_pending}
    return {
        "figures": figures,
        "figures_open": {k: ledger.format_open(v) for k, v in figures.items()},
        "epochs": list(Epoch.objects.select_related("deployment")[:20]),
        "issues": list(ReconciliationIssue.objects.filter(resolved_at__isnull=True)[:50]),
        "relay_threshold": settings.REWARDS_RELAY_THRESHOLD,
        "fees_pending_count": PendingFee.objects.count(),
    }


# --- Reads for insights' daily summaries, for [start, end) datetimes. Amounts are exact int base units,
# summed in Python (on SQLite the column is text: see `rewards.fields`).

def settlement_daily_totals(*, start, end) -> list[dict]:
    """Per (UTC day, model version hash): settled answers, fees and their split."""
    from .models import Settlement

    totals: dict = {}
    rows = (Settlement.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
            .values_list("created_at", "model_version_hash", "fee", "contributors_amount", "owner_amount",
                         "protocol_amount").iterator(chunk_size=5000))
    for created, model_hash, fee, contributors, owner, protocol in rows:
        entry = totals.setdefault((created.date(), model_hash), {
            "day": created.date(), "model_version_hash": model_hash, "settlements": 0, "fee": 0,
            "contributors": 0, "owner": 0, "protocol": 0})
        entry["settlements"] += 1
        entry["fee"] += int(fee)
        entry["contributors"] += int(contributors)
        entry["owner"] += int(owner)
        entry["protocol"] += int(protocol)
    return list(totals.values())


def contributor_earnings_daily(*, start, end) -> list[dict]:
    """Per (UTC day, user id): what contributors earned from answers settled in [start, end)."""
    totals: dict = defaultdict(int)
    rows = (SettlementShare.objects.filter(role=ShareRole.CONTRIBUTOR, settlement__created_at__gte=start,
                                           settlement__created_at__lt=end).order_by()
            .values_list("settlement__created_at", "user_id", "amount").iterator(chunk_size=5000))
    for created, user_id, amount in rows:
        totals[(created.date(), user_id)] += int(amount)
    return [{"day": day, "user_id": user_id, "amount": amount} for (day, user_id), amount in totals.items()]


def claims_daily_totals(*, start, end) -> list[dict]:
    """Per UTC day: OPEN claimed on chain (claims booked in the ledger) in [start, end)."""
    totals: dict = defaultdict(int)
    rows = (ChainClaim.objects.filter(created_at__gte=start, created_at__lt=end, transaction__isnull=False)
            .order_by().values_list("created_at", "amount"))
    for created, amount in rows:
        totals[created.date()] += int(amount)
    return [{"day": day, "amount": amount} for day, amount in totals.items()]


def epochs_overview() -> list[dict]:
    """Every epoch, oldest first: what it froze (accrued), funded, its recipients, and what was claimed on
    chain between its freeze and the next epoch's."""
    from django.db.models import Count

    from .models import PayoutAllocation

    epochs = list(Epoch.objects.order_by("frozen_at", "number"))
    recipients = dict(PayoutAllocation.objects.values_list("epoch_id").annotate(n=Count("id"))
                      .values_list("epoch_id", "n"))
    claims = list(ChainClaim.objects.filter(transaction__isnull=False).values_list("created_at", "amount"))
    overview = []
    for position, epoch in enumerate(epochs):
        until = epochs[position + 1].frozen_at if position + 1 < len(epochs) else None
        claimed = sum(int(amount) for created, amount in claims
                      if created >= epoch.frozen_at and (until is None or created < until))
        overview.append({
            "number": epoch.number, "state": epoch.state, "frozen_at": epoch.frozen_at, "closed_at": epoch.closed_at,
            "accrued": int(epoch.increase), "funded": int(epoch.funded_amount), "claimed": claimed,
            "recipients": recipients.get(epoch.pk, 0),
        })
    return overview


def slash_bookings(*, keys) -> dict:
    """{evidence hash: SlashBooking} for the slashes among `keys` already booked as contributors' earnings."""
    return {b.key: b for b in SlashBooking.objects.filter(key__in=list(keys))}
