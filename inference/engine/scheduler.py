"""Fair admission of queued requests into the next batch.

Policy: oldest-waiting first across all adapters, with no overtaking of a request that is blocked
only by slot capacity. A request whose adapter is still loading from disk is skipped (it does not
hold up others, and is retried every step); but once the oldest admissible request cannot get a
device slot, nothing younger is admitted in that step. Running rows release their slots as they
finish, so the blocked request gets the next free slot: a rarely used adapter waits at most for the
rows ahead of it, never forever, however busy the popular adapters are.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TypeVar

RequestT = TypeVar("RequestT")


class Admission(enum.Enum):
    """What the engine can do with one queued request this step."""

    ADMIT = "admit"  # a slot is locked for it; it joins the batch
    NOT_READY = "not_ready"  # its adapter is loading; skip without blocking others
    NO_CAPACITY = "no_capacity"  # no device slot can be freed now; stop admitting
    DROP = "drop"  # it failed (bad adapter, cancelled); remove it from the queue


def select_admissions(
    waiting: Sequence[RequestT],
    decide: Callable[[RequestT], Admission],
    free_rows: int,
) -> tuple[list[RequestT], list[RequestT]]:
    """Walk ``waiting`` (oldest first) and return ``(admitted, dropped)``.

    ``decide`` is called at most once per request and must lock whatever it admits (the engine
    locks the adapter slot inside it), so capacity seen by later requests is up to date.
    """
    admitted: list[RequestT] = []
    dropped: list[RequestT] = []
    for request in waiting:
        if len(admitted) >= free_rows:
            break
        outcome = decide(request)
        if outcome is Admission.ADMIT:
            admitted.append(request)
        elif outcome is Admission.DROP:
            dropped.append(request)
        elif outcome is Admission.NO_CAPACITY:
            break
    return admitted, dropped
