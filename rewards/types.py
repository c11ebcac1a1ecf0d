"""Rewards' public vocabulary: the enumerations other apps may name (an epoch's state, a harm hold's state, a
ledger account's kind...). Other apps import them from here, never from `rewards.models`; reads and writes go
through `rewards.selectors` and `rewards.services` (tests/foundation/test_app_boundaries.py)."""

from .models import AccountKind, EpochState, Fallback, HoldState, RelayState, ReleaseState, ShareRole

__all__ = ["AccountKind", "EpochState", "Fallback", "HoldState", "RelayState", "ReleaseState", "ShareRole"]
