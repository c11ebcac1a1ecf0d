"""Rewards pages: earnings and claims, wallet linking (SIWE), the published fee split, the staff
overview. Thin: reads from selectors, writes through services and tasks."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from . import selectors, services
from .charts import earnings_svg
from .ledger import format_open


def index(request):
    if not request.user.is_authenticated:
        return render(request, "rewards/index.html", {"policy": selectors.fee_policy_public()})
    context = {
        "earnings": selectors.earnings_for(user=request.user),
        "claims": selectors.claims_for(user=request.user),
        "chart": earnings_svg(selectors.earnings_series(user=request.user)),
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
    context = {"wallet": selectors.wallet_state(user=request.user), "delay_hours": settings.WALLET_CHANGE_DELAY_HOURS}
    if request.method == "POST":
        try:
            if request.POST.get("action") == "prepare":
                issued = services.wallet_nonce_issue(user=request.user, address=request.POST.get("address", ""))
                context["issued"] = issued
            else:
                linked = services.wallet_link(user=request.user, message=request.POST.get("message", ""),
                                              signature=request.POST.get("signature", ""))
                when = "now" if linked.effective_at <= linked.linked_at else f"from {linked.effective_at:%d %b %Y %H:%M} UTC"
                messages.success(request, f"Wallet {linked.address} linked; it receives payouts {when}.")
                return redirect("rewards:wallet")
        except ValidationError as exc:
            context["errors"] = exc.messages
            context["message"] = request.POST.get("message", "")
    return render(request, "rewards/wallet.html", context)


def fees(request):
    return render(request, "rewards/fees.html", {"policy": selectors.fee_policy_public()})


@staff_member_required
def admin_overview(request):
    return render(request, "rewards/admin_overview.html", selectors.admin_overview())
