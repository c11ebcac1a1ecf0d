"""Reads for rewards: earnings, claims with proofs, the fee policy and the admin overview.

Callers import this package (`from rewards import selectors; selectors.earnings_for(...)`); each read lives
in the module named for what it reads:

* `credit`: the public fee policy, a user's payout wallets (`wallet_state`), the deposit page
  (`deposit_overview`), the spendable credit (`credit_balance`) and one inference's fee (`fee_for`).
* `claims`: what each address can claim with its proof (`claims_for`), "Claim for me" requests, why there is
  nothing to claim (`nothing_to_claim`) and the open harm holds (`earnings_holds_open`).
* `earnings`: `earnings_for`, the shares for the API, the rewards page's pages and its earnings chart.
* `overview`: the staff overview (`admin_overview`), every epoch, and the per-day rows of insights' summaries.
* `lookups`: reads for the other apps, which never import `rewards.models`.
"""

from .claims import POSTED, claim_relays_for, claims_for, earnings_holds_open, nothing_to_claim
from .credit import (
    credit_balance,
    deposit_overview,
    deposit_page_url,
    fee_for,
    fee_policy_in_force,
    fee_policy_public,
    wallet_state,
)
from .earnings import (
    PAGE_SIZE,
    earning_items,
    earning_shares,
    earnings_chart,
    earnings_for,
    earnings_page,
    model_names_by_hash,
    receipts_page,
    with_model_names,
)
from .lookups import (
    earnings_holds_confirmed,
    earnings_holds_held,
    epoch_allocations,
    epoch_by_id,
    slash_bookings,
    wallet_addresses_of,
    wallet_owner,
)
from .overview import (
    admin_overview,
    claims_daily_totals,
    contributor_earnings_daily,
    epochs_overview,
    settlement_daily_totals,
)

__all__ = [
    "PAGE_SIZE",
    "POSTED",
    "admin_overview",
    "claim_relays_for",
    "claims_daily_totals",
    "claims_for",
    "contributor_earnings_daily",
    "credit_balance",
    "deposit_overview",
    "deposit_page_url",
    "earning_items",
    "earning_shares",
    "earnings_chart",
    "earnings_for",
    "earnings_holds_confirmed",
    "earnings_holds_held",
    "earnings_holds_open",
    "earnings_page",
    "epoch_allocations",
    "epoch_by_id",
    "epochs_overview",
    "fee_for",
    "fee_policy_in_force",
    "fee_policy_public",
    "model_names_by_hash",
    "nothing_to_claim",
    "receipts_page",
    "settlement_daily_totals",
    "slash_bookings",
    "wallet_addresses_of",
    "wallet_owner",
    "wallet_state",
    "with_model_names",
]
