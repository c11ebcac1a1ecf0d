"""Writes for governance. Callers import this package (`from governance import services`); each write lives
in the module named for what it does:

* `indexer`: `governance_index(...)` mirrors the governor and the parameter registry (proposals, votes,
  queue/execute/cancel, `FeeSplitChanged` → a new rewards fee-policy version, `EpochLengthChanged` /
  `SharePolicyChanged` → a `GovernedValue` the epoch schedule and attribution read).
* `actions`: transactions asked for from the pages (`WalletAction`): `delegate_request`, `proposal_submit`
  (a fee split, an epoch length or a share policy: the registry checks it first and its refusal is shown in
  words), `vote_request`, `proposal_advance` (staff: queue / execute), `wallet_action_run` (the `chain`
  worker; safe to run again), `wallet_action_retry`.
* `staking`: `stake_requirement_set`, `stake_allows_contribution(*, user, datanet) -> (bool, reason)` (the
  contribution upload path's check), `stake_request` / `unstake_request` / `withdraw_request`,
  `stakes_index`, and the slash rule `stake_slashes_enforce` / `stake_slash_run` (its evidence: `spam_rows`,
  `harmful_rows`, both as `evidence_rows`).
* `slash_rewards`: `slashes_book()` books each done slash as earnings of the Datanet's honest contributors
  (pro rata to their accepted rows in its latest version, the slashed one left out; once per slash);
  `slashes_release()` pays each booked slash's OPEN out of the pool to the treasury (`releasePool`), once.
* `reconcile`: `governance_reconcile(...)`, run by `manage.py chain_reconcile`.
* `deployment_ensure(...)` / `staking_ensure(...)` (from `governance.chainio`): the deployment on this chain.
"""

from ..chainio import deployment_ensure, staking_ensure
from .actions import (
    delegate_request,
    proposal_advance,
    proposal_submit,
    vote_request,
    wallet_action_retry,
    wallet_action_run,
)
from .indexer import governance_index
from .reconcile import governance_reconcile
from .slash_rewards import slashes_book, slashes_release
from .staking import (
    evidence_rows,
    harmful_rows,
    spam_rows,
    stake_allows_contribution,
    stake_request,
    stake_requirement_set,
    stake_slash_run,
    stake_slashes_enforce,
    stakes_index,
    unstake_request,
    withdraw_request,
)

__all__ = [
    "delegate_request",
    "deployment_ensure",
    "evidence_rows",
    "governance_index",
    "governance_reconcile",
    "harmful_rows",
    "proposal_advance",
    "proposal_submit",
    "slashes_book",
    "slashes_release",
    "spam_rows",
    "stake_allows_contribution",
    "stake_request",
    "stake_requirement_set",
    "stake_slash_run",
    "stake_slashes_enforce",
    "stakes_index",
    "staking_ensure",
    "unstake_request",
    "vote_request",
    "wallet_action_retry",
    "wallet_action_run",
    "withdraw_request",
]
