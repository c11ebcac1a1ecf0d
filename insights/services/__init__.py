"""Writes for insights. Callers import this package (`from insights import services;
services.summaries_refresh(...)`); the code lives in the module named for what it does:

* `refresh`: `summaries_refresh` recomputes the summary tables from the other apps' selectors (idempotent
  per day; the beat task runs `summaries_refresh_recent`); it writes no audit row, only derived figures.
* `serving`: `serving_sample_take` samples the model server's adapter-cache counters; `counter_increases`.
* `synthetic`: `synthetic_history_replace` writes the clearly flagged synthetic history, whose numbers
  `lineage.demo.history.history_generate` makes (demos, tests, `bench/insights.py`).
* `facts`: the fact accumulator (`Facts`) and day arithmetic both share.
"""

from ..models import CohortKind, Grain, ScopeKind
from .facts import EPOCH_START, GLOBAL, OPEN, Facts, midnight, week_start
from .refresh import RefreshReport, summaries_refresh, summaries_refresh_recent
from .serving import counter_increases, serving_sample_take
from .synthetic import synthetic_history_replace

__all__ = [
    "EPOCH_START",
    "GLOBAL",
    "OPEN",
    "CohortKind",
    "Facts",
    "Grain",
    "RefreshReport",
    "ScopeKind",
    "counter_increases",
    "midnight",
    "serving_sample_take",
    "summaries_refresh",
    "summaries_refresh_recent",
    "synthetic_history_replace",
    "week_start",
]
