"""Rewards pages: earnings and claims, wallet linking (SIWE), the published fee split, the staff
overview. Thin: reads from selectors, writes through services and tasks."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from lineage.csv_export import csv_download

from . import selectors, services
from .charts import earnings_svg
from .ledger import format_open


def index(request):
    if not request.user.is_authenticated:
        return render(request, "rewards/index.html", {"policy": selectors.fee_policy_public()})
    earnings = selectors.earnings_for(user=request.user, limit=0)  # the per-inference list is paginated below
    selectors.with_model_names(earnings["by_model"] + earnings["owner_revenue"] + earnings["holds"]
                               + earnings["withheld_holds"])
    chart = selectors.earnings_chart(user=request.user)
    context = {
        "earnings": earnings,
        "earnings_page": selectors.earnings_page(user=request.user, page_number=request.GET.get("earnings_page")),
        "receipts_page": selectors.receipts_page(user=request.user, page_number=request.GET.get("receipts_page")),
        "claims": selectors.claims_for(user=request.user),
        "chart": chart,
        "chart_svg": "" if chart["empty"] else earnings_svg(chart["series"]),  # drawn without JavaScript
        "wallet": selectors.wallet_state(user=request.user),
        "relay_enabled": settings.REWARDS_RELAY_CLAIMS,
    }
    for claim in context["claims"]:
        claim["claimable_open"] = format_open(claim["claimable"])
        claim["cumulative_open"] = format_open(claim["cumulative_amount"])
    return render(request, "rewards/index.html", context)


@login_required
def claim(request):
    """GET: the proofs and the latest "Claim for me" requests, read from the database. POST with `relay`:
    queue a relay (or say why there is nothing to claim), then redirect here, so a reload sends nothing."""
    if request.method == "POST":
        if request.POST.get("relay") and settings.REWARDS_RELAY_CLAIMS:
            asked = services.claim_relay_request(user=request.user)
            (messages.info if asked.relay else messages.warning)(request, asked.message)
        return redirect("rewards:claim")
    claims = selectors.claims_for(user=request.user)
    for item in claims:
        item["claimable_open"] = format_open(item["claimable"])
        item["call"] = json.dumps({"account": item["address"], "cumulativeAmount": str(item["cumulative_amount"]),
                                   "proof": item["proof"]}, indent=2)
    relays = selectors.claim_relays_for(user=request.user)
    return render(request, "rewards/claim.html", {
        "claims": claims, "relays": relays, "relay": relays[0] if relays else None,
        "relay_enabled": settings.REWARDS_RELAY_CLAIMS,
        "claimable": any(item["claimable"] > 0 for item in claims)})


@login_required
def deposit(request):
    """How to add inference credit: the deposit address, the linked wallet it must come from, the deposit
    indexer's progress, and what was credited (deposits and grants)."""
    return render(request, "rewards/deposit.html", selectors.deposit_overview(user=request.user))


@login_required
def wallet(request):
    """Link a payout wallet by SIWE. After a refusal the form comes back as it was: the address typed, or
    the message issued and the signature pasted, with the reason beside the field."""
    context = {"wallet": selectors.wallet_state(user=request.user), "delay_hours": settings.WALLET_CHANGE_DELAY_HOURS,
               "address": request.POST.get("address", "").strip()}
    if request.method == "POST":
        try:
            if request.POST.get("action") == "prepare":
                issued = services.wallet_nonce_issue(user=request.user, address=context["address"])
                context["issued"] = issued
            else:
                linked = services.wallet_link(user=request.user, message=request.POST.get("message", ""),
                                              signature=request.POST.get("signature", ""))
                when = "now" if linked.effective_at <= linked.linked_at else f"from {linked.effective_at:%d %b %Y %H:%M} UTC"
                messages.success(request, f"Wallet {linked.address} linked; it receives payouts {when}.")
                return redirect("rewards:wallet")
        except ValidationError as exc:
            context["errors"] = exc.messages
            context["error_field"] = "address" if request.POST.get("action") == "prepare" else "signature"
            context["message"] = request.POST.get("message", "")
            context["signature"] = request.POST.get("signature", "")
    return render(request, "rewards/wallet.html", context)


def fees(request):
    return render(request, "rewards/fees.html", {"policy": selectors.fee_policy_public()})


@staff_member_required
def admin_overview(request):
    return render(request, "rewards/admin_overview.html", selectors.admin_overview())


# --- CSV exports: every row of the two lists on the rewards page (the page shows them 25 at a time) ---------

CSV_PAGE_ROWS = 500
EARNINGS_CSV_HEADER = ["when_utc", "inference_id", "model", "model_version_hash", "role", "amount_open",
                       "amount_base_units", "rows", "epoch", "status", "receipt_url"]
RECEIPTS_CSV_HEADER = ["when_utc", "inference_id", "model", "model_version_hash", "fee_open", "fee_base_units",
                       "receipt_id", "receipt_url"]


def _all_pages(read_page):
    """Every item of a paginated selector, page by page (the download streams; no page is held twice)."""
    number = 1
    while True:
        page = read_page(number)
        yield from page.object_list
        if not page.has_next():
            return
        number += 1


@login_required
def earnings_csv(request):
    """What the user's data and models earned, one row per inference share, newest first."""
    def rows():
        for m in _all_pages(lambda n: selectors.earnings_page(user=request.user, page_number=n, per_page=CSV_PAGE_ROWS)):
            yield [m["created_at"].isoformat(), m["inference_id"], m["model_name"], m["model_version_hash"], m["role"],
                   format_open(m["amount"], grouping=False), str(int(m["amount"])), " ".join(map(str, m["rows"] or [])), m["epoch"], m["status"],
                   request.build_absolute_uri(m["receipt_url"]) if m["receipt_url"] else ""]

    return csv_download(header=EARNINGS_CSV_HEADER, rows=rows(), filename="lineage-earnings.csv")


@login_required
def receipts_csv(request):
    """The answers the user paid for, with their fee and attribution receipt, newest first."""
    def rows():
        for m in _all_pages(lambda n: selectors.receipts_page(user=request.user, page_number=n, per_page=CSV_PAGE_ROWS)):
            yield [m["created_at"].isoformat(), m["inference_id"], m["model_name"], m["model_version_hash"],
                   format_open(m["fee"], grouping=False), str(int(m["fee"])), m["receipt_id"],
                   request.build_absolute_uri(m["receipt_url"]) if m["receipt_url"] else ""]

    return csv_download(header=RECEIPTS_CSV_HEADER, rows=rows(), filename="lineage-receipts.csv")
