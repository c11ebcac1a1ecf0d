"""Where a lower app asks a higher one something without importing it.

An app that must know something only a higher app can answer (attribution's receipt page: is this receipt
still being computed by inference?) calls a hook here; the higher app registers its answer in
`AppConfig.ready`. The import graph stays one-way (tests/foundation/test_app_import_graph.py) and the call
does exactly what the direct import did.

Plain Python, no Django: registration happens once per process, at start-up, before any request.
"""

from collections.abc import Callable
from typing import Any


class Hook:
    """A named set of callables; `register` is idempotent so `ready()` may run twice (tests, autoreload)."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: dict[str, Callable[..., Any]] = {}

    def register(self, key: str, callback: Callable[..., Any]) -> None:
        self._callbacks[key] = callback

    def callbacks(self) -> tuple[Callable[..., Any], ...]:
        return tuple(self._callbacks.values())

    def only(self) -> Callable[..., Any]:
        """The one callback a single-answer hook must have; a missing one is a start-up bug, said plainly."""
        if len(self._callbacks) != 1:
            raise LookupError(f"hook {self.name!r} needs exactly one provider, has {sorted(self._callbacks)}")
        return next(iter(self._callbacks.values()))


# receipt_id -> the inference whose queued receipt is not stored yet, or None (inference registers it)
receipt_awaited = Hook("receipt_awaited")
# receipt_id -> a receipt of another app in attribution's id space, or None (retrieval registers it)
foreign_receipt = Hook("foreign_receipt")
# () -> {"seconds", "governed"}: the epoch length in force (governance registers it; rewards closes epochs)
epoch_length = Hook("epoch_length")
# () -> {"fdr", "top_groups", ...}: the share policy in force (governance registers it; attribution pays by it)
share_policy = Hook("share_policy")
# (user, datanet) -> (allowed, reason) and -> the stake-scaled row quota or None (governance registers them;
# datanets asks before taking a contribution)
stake_allows = Hook("stake_allows_contribution")
stake_quota = Hook("stake_row_quota")
# () -> list of disagreement strings, run by `manage.py chain_reconcile` after rewards' own check
chain_reconcilers = Hook("chain_reconcilers")
# (client) -> a line for `manage.py chain_node` to print, after the rewards contracts are deployed
chain_node_deployers = Hook("chain_node_deployers")


def epoch_length_in_force() -> dict:
    """Seconds between earnings epoch closes, as the governance app decides them (see `epoch_length`)."""
    return epoch_length.only()()


def share_policy_in_force() -> dict:
    """The credit share policy as the governance app decides it (see `share_policy`)."""
    return share_policy.only()()


def stake_allows_contribution(*, user, datanet) -> tuple[bool, str]:
    """Whether `user` may contribute to `datanet` as far as stakes go, and why not (see `stake_allows`)."""
    return stake_allows.only()(user=user, datanet=datanet)


def stake_row_quota(*, user, datanet):
    """The upload quota that scales with stake, or None (see `stake_quota`)."""
    return stake_quota.only()(user=user, datanet=datanet)
