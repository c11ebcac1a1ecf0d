"""What the summaries and the synthetic history share: the fact accumulator (`Facts`), day arithmetic
(`week_start`, `midnight`, `as_date`) and the lock on `RefreshState` (`state_locked`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from django.utils import timezone

from ..catalog import METRICS
from ..models import Grain, MetricFact, RefreshState, ScopeKind

OPEN = 10**18
EPOCH_START = date(1970, 1, 5)  # a Monday: `since=None` recomputes everything from here
GLOBAL = (ScopeKind.GLOBAL, "")


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def midnight(day: date) -> datetime:
    return datetime.combine(day, dtime.min, tzinfo=UTC)


def as_date(value) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if timezone.is_aware(value) else value.date()
    return value


class Facts:
    """Accumulates fact values keyed by (day, grain, metric, scope kind, scope id)."""

    def __init__(self):
        self.values: dict[tuple, float] = defaultdict(float)

    def add(self, day, metric: str, value, *scopes, grain=Grain.DAY) -> None:
        if metric not in METRICS:
            raise KeyError(f"unknown metric {metric}")
        for scope_kind, scope_id in scopes or (GLOBAL,):
            self.values[(day, grain, metric, scope_kind, str(scope_id))] += float(value or 0)

    def set(self, day, metric: str, value, scope=GLOBAL, grain=Grain.DAY) -> None:
        if metric not in METRICS:
            raise KeyError(f"unknown metric {metric}")
        self.values[(day, grain, metric, scope[0], str(scope[1]))] = float(value)

    def rows(self, *, synthetic: bool, now) -> list[MetricFact]:
        rows = []
        for (day, grain, metric, scope_kind, scope_id), value in self.values.items():
            if value == 0 and METRICS[metric].additive:
                continue  # a missing additive fact reads as zero
            rows.append(MetricFact(day=day, grain=grain, metric=metric, scope_kind=scope_kind, scope_id=scope_id,
                                   value=value, synthetic=synthetic, computed_at=now))
        return rows


def state_locked() -> RefreshState:
    RefreshState.objects.get_or_create(pk=1)
    return RefreshState.objects.select_for_update().get(pk=1)
