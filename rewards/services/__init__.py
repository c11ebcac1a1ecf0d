"""Writes for rewards. Keyword arguments, one `transaction.atomic` per change, an audit row for every
admin/user action (fee settlements are audited by their own append-only ledger transaction).

Callers import this package (`from rewards import services; services.fee_record(...)`); each write lives
in the module named for what it does:

* `fees`: the fee policy (`fee_policy_current`, `fee_policy_set`) and how one fee is split (`fee_split`).
* `settlement`: `fee_record(...)` holds an inference's fee on the payer's credit, to be booked by the next
  batch; `fee_settle_batch(...)` / `fees_settle_pending(...)` book recorded fees in batches;
  `fee_settle(...)` records and books one fee at once (all idempotent per inference id).
* `credit`: OPEN credit from an admin (`credit_grant`), a new account's one-time starter credit
  (`credit_starter_grant`, `REWARDS_STARTER_GRANT_OPEN`) and on-chain deposits (`deposits_index`).
* `wallets`: `wallet_nonce_issue(...)`, `wallet_link(...)` (SIWE) and `wallets_effective_at(...)`.
* `epochs`: `epoch_close(...)` freezes earnings and publishes them on chain (a resumable state machine,
  `EPOCH_STEPS`); earnings under a harm hold (`rewards.holds`) wait for the curator's decision;
  `epoch_close_due(...)`: whether the epoch length in force (governed, else the setting) has passed.
* `claims`: `claims_index(...)` books `Claimed` events; `claim_relay_request(...)` / `claim_relay_run(...)`
  are "Claim for me", queued by the page and sent by a worker.
* `reconcile`: `chain_reconcile(...)` compares the database with the chain.
* `slashes`: `slash_book(...)` books a stake slashed into a Datanet's pool as its honest contributors'
  earnings, once per slash (governance's `slashes_book` calls it).
* `slash_releases`: `slash_releases_send(...)` pays each booked slash's OPEN out of the Datanet's pool in the
  stakes contract to the treasury that funds the epochs (`releasePool`), once, safe after a lost answer;
  `slash_releases_reconcile(...)` compares booked, recorded and on-chain releases (governance calls both).
* `chain_events`: the helpers the two chain indexers share (event cursors, address → user).

Largest-remainder splitting is `rewards.splitting.largest_remainder`; the demo's credit and settled fees
are seeded by `lineage.demo.fees`.
"""

from ..ledger import InsufficientCredit, LedgerError, format_open
from ..splitting import largest_remainder
from .claims import ClaimRelayAsked, claim_relay, claim_relay_request, claim_relay_run, claims_index
from .credit import (
    STARTER_GRANT_REASON,
    credit_grant,
    credit_starter_grant,
    deposits_index,
    starter_grant_amount,
)
from .epochs import EPOCH_CLOSE_LABEL, EPOCH_STEPS, EpochBlocked, epoch_close, epoch_close_due, epoch_resume
from .fees import BPS, PPM, FeeSplit, fee_policy_current, fee_policy_set, fee_split
from .reconcile import chain_reconcile
from .settlement import (
    FeeBatch,
    fee_attach_receipt,
    fee_record,
    fee_settle,
    fee_settle_batch,
    fees_release_unreceipted,
    fees_settle_pending,
)
from .slash_releases import slash_release_sources, slash_releases_reconcile, slash_releases_send
from .slashes import slash_book
from .wallets import SIWE_MESSAGES, siwe_domain, wallet_link, wallet_nonce_issue, wallets_effective_at

__all__ = [
    "BPS",
    "EPOCH_CLOSE_LABEL",
    "EPOCH_STEPS",
    "PPM",
    "SIWE_MESSAGES",
    "STARTER_GRANT_REASON",
    "ClaimRelayAsked",
    "EpochBlocked",
    "FeeBatch",
    "FeeSplit",
    "InsufficientCredit",
    "LedgerError",
    "chain_reconcile",
    "claim_relay",
    "claim_relay_request",
    "claim_relay_run",
    "claims_index",
    "credit_grant",
    "credit_starter_grant",
    "deposits_index",
    "epoch_close",
    "epoch_close_due",
    "epoch_resume",
    "fee_policy_current",
    "fee_policy_set",
    "fee_attach_receipt",
    "fee_record",
    "fee_settle",
    "fee_settle_batch",
    "fees_release_unreceipted",
    "fee_split",
    "fees_settle_pending",
    "format_open",
    "largest_remainder",
    "siwe_domain",
    "slash_book",
    "slash_release_sources",
    "slash_releases_reconcile",
    "slash_releases_send",
    "starter_grant_amount",
    "wallet_link",
    "wallet_nonce_issue",
    "wallets_effective_at",
]
