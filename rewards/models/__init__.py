"""Rewards: the OPEN ledger (double entry, append-only), fee settlements, wallets, epochs and the chain.

Every amount is an `AmountField` (exact int base units, 18 decimals). Ledger rows are never updated or
deleted; balances are sums of entries (`rewards.ledger`). The cached figures of user *credit* accounts,
`LedgerAccount.balance` and `held`, exist so an inference's fee can be held (refused when short) with one
conditional row update instead of summing a payer's whole history; `ledger_check` proves `balance`
equals the sum of the account's entries and `held` the sum of the payer's `PendingFee` rows.

The models live in modules by domain, and every name is re-exported here, so `from rewards.models import X`
(and Django's `rewards.<Model>` labels) work as before:

* `base`: `USER`, the append-only base class.
* `ledger`: accounts, transactions and entries; admin credit grants and promotional credit.
* `fees`: the fee policy and its versions, pending fees, settlements and their shares.
* `slashes`: slashed stakes booked as earnings, their shares, and the pool releases that fund them.
* `holds`: earnings held for review when attribution flags harmful rows.
* `chain`: wallets (SIWE), the chain deployment, event cursors and indexed deposits.
* `epochs`: payout epochs, allocations, Merkle leaves, indexed claims, "Claim for me" relays, reconciliation issues.
"""

from .base import USER, AppendOnly
from .chain import ChainCursor, ChainDeployment, ChainDeposit, Wallet, WalletNonce
from .epochs import (
    EPOCH_ORDER,
    ChainClaim,
    ClaimRelay,
    Epoch,
    EpochState,
    PayoutAllocation,
    PayoutLeaf,
    ReconciliationIssue,
    RelayState,
)
from .fees import Fallback, FeePolicy, FeePolicyVersion, PendingFee, Settlement, SettlementShare, ShareRole
from .holds import EarningsHold, HoldState
from .ledger import (
    USER_KINDS,
    AccountKind,
    CreditGrant,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PromotionalCredit,
)
from .slashes import ReleaseState, SlashBooking, SlashRelease, SlashShare

__all__ = [
    "USER", "AppendOnly",
    "AccountKind", "USER_KINDS", "LedgerAccount", "LedgerTransaction", "LedgerEntry", "CreditGrant", "PromotionalCredit",
    "Fallback", "FeePolicy", "FeePolicyVersion", "PendingFee", "Settlement", "ShareRole", "SettlementShare",
    "SlashBooking", "ReleaseState", "SlashRelease", "SlashShare",
    "HoldState", "EarningsHold",
    "Wallet", "WalletNonce", "ChainDeployment", "ChainCursor", "ChainDeposit",
    "EpochState", "EPOCH_ORDER", "Epoch", "PayoutAllocation", "PayoutLeaf", "ChainClaim", "RelayState", "ClaimRelay",
    "ReconciliationIssue",
]
