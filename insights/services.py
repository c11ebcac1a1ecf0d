"""Writes for insights: recompute the summary tables from the other apps (`summaries_refresh`), and write
a year of clearly flagged synthetic history for demos and tests (`history_generate`).

`summaries_refresh` reads every app through its selectors, computes all facts of the days from `since`
(aligned back to a Monday, so weekly figures are whole) to today, then replaces the real facts of those
days in one short transaction under a lock on `RefreshState`. Running it twice gives the same tables:
it is an idempotent upsert per day, and the beat task runs it every few minutes for the recent days.
It writes no audit row: it changes no one's data, only derived figures, and runs every few minutes.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from accounts import selectors as accounts_selectors
from accounts.services import audit_record
from datanets import selectors as datanet_selectors
from inference import selectors as inference_selectors
from models_registry import selectors as registry_selectors
from rewards import selectors as rewards_selectors

from .catalog import METRICS
from .models import (
    ApiCallCount,
    CohortKind,
    CohortRetention,
    EpochSummary,
    Grain,
    MetricFact,
    RefreshState,
    ScopeKind,
    ServingSample,
)

logger = logging.getLogger("insights")

OPEN = 10**18
EPOCH_START = date(1970, 1, 5)  # a Monday: `since=None` recomputes everything from here
GLOBAL = (ScopeKind.GLOBAL, "")


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def midnight(day: date) -> datetime:
    return datetime.combine(day, dtime.min, tzinfo=UTC)


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if timezone.is_aware(value) else value.date()
    return value


def _open(amount: int) -> float:
    return int(amount) / OPEN


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted copy."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


class _Facts:
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


# --- summaries_refresh ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefreshReport:
    since: date
    until: date
    facts: int
    cohorts: int
    epochs: int
    duration_s: float


def summaries_refresh(*, since=None, sample_serving: bool = True) -> RefreshReport:
    """Recompute the real summaries of every day from `since` (a date or datetime; None: all history) to
    today. Idempotent: the facts of those days are replaced, so a second run changes nothing."""
    started = time.perf_counter()
    today = timezone.now().astimezone(UTC).date()
    first = EPOCH_START if since is None else min(_as_date(since), today)
    first = week_start(first)
    if sample_serving:
        serving_sample_take()
    facts = _Facts()
    start, end = midnight(first), midnight(today + timedelta(days=1))
    # One scan of every contributor's first upload per Datanet serves both the new-contributor facts
    # and the retention cohorts.
    first_contributions = datanet_selectors.contributor_first_contributions()
    _contribution_facts(facts, start, end, first_contributions)
    _model_facts(facts, start, end, first, today)
    _inference_facts(facts, start, end)
    _serving_facts(facts, start, end)
    _developer_facts(facts, start, end, first, today)
    _reward_facts(facts, start, end)
    cohorts = _cohort_rows(today, first_contributions)
    epochs = _epoch_rows()
    now = timezone.now()
    rows = facts.rows(synthetic=False, now=now)
    with transaction.atomic():
        state = _state_locked()
        MetricFact.objects.filter(synthetic=False, day__gte=first).delete()
        MetricFact.objects.bulk_create(rows, batch_size=2000)
        CohortRetention.objects.filter(synthetic=False).delete()
        CohortRetention.objects.bulk_create(cohorts, batch_size=2000)
        EpochSummary.objects.filter(synthetic=False).delete()
        EpochSummary.objects.bulk_create(epochs, batch_size=2000)
        state.last_started_at = now - timedelta(seconds=time.perf_counter() - started)
        state.last_finished_at = timezone.now()
        state.last_since = first
        state.last_duration_s = time.perf_counter() - started
        state.last_facts = len(rows)
        state.save()
    return RefreshReport(since=first, until=today, facts=len(rows), cohorts=len(cohorts), epochs=len(epochs),
                         duration_s=time.perf_counter() - started)


def summaries_refresh_recent() -> RefreshReport:
    """What the beat task runs: the last `INSIGHTS_REFRESH_DAYS` days (late events land in earlier days)."""
    today = timezone.now().astimezone(UTC).date()
    return summaries_refresh(since=today - timedelta(days=settings.INSIGHTS_REFRESH_DAYS))


def _state_locked() -> RefreshState:
    RefreshState.objects.get_or_create(pk=1)
    return RefreshState.objects.select_for_update().get(pk=1)


def _contribution_facts(facts: _Facts, start, end, first_contributions: list[tuple]) -> None:
    for row in datanet_selectors.contribution_daily_totals(start=start, end=end):
        day, scopes = row["day"], (GLOBAL, (ScopeKind.DATANET, row["datanet_id"]))
        facts.add(day, "contrib.contributions", row["contributions"], *scopes)
        facts.add(day, "contrib.rows_submitted", row["submitted"], *scopes)
        facts.add(day, "contrib.rows_invalid", row["invalid"], *scopes)
        facts.add(day, "contrib.rows_rejected", row["invalid"], *scopes)
        facts.add(day, "contrib.rows_duplicate", row["duplicate"], *scopes)
        facts.add(day, "contrib.rows_near_duplicate", row["near_duplicate"], *scopes)
    for row in datanet_selectors.review_daily_totals(start=start, end=end):
        metric = "contrib.rows_accepted" if row["status"] == "accepted" else "contrib.rows_rejected"
        facts.add(row["day"], metric, row["n"], GLOBAL, (ScopeKind.DATANET, row["datanet_id"]))

    first_seen: dict[int, datetime] = {}  # a contributor is new to the platform once, and once to each Datanet
    for user_id, datanet_id, first in first_contributions:
        if start <= first < end:
            facts.add(_as_date(first), "contrib.new_contributors", 1, (ScopeKind.DATANET, datanet_id))
        first_seen[user_id] = min(first, first_seen.get(user_id, first))
    for first in first_seen.values():
        if start <= first < end:
            facts.add(_as_date(first), "contrib.new_contributors", 1)

    daily, weekly = defaultdict(set), defaultdict(set)
    for day, datanet_id, user_id in datanet_selectors.contributor_activity(start=start, end=end):
        for scope in (GLOBAL, (ScopeKind.DATANET, str(datanet_id))):
            daily[(day, scope)].add(user_id)
            weekly[(week_start(day), scope)].add(user_id)
    for (day, scope), users in daily.items():
        facts.set(day, "contrib.active_contributors", len(users), scope)
    for (week, scope), users in weekly.items():
        facts.set(week, "contrib.active_contributors", len(users), scope, grain=Grain.WEEK)


def _model_facts(facts: _Facts, start, end, first: date, today: date) -> None:
    totals = registry_selectors.fine_tune_daily_totals(start=start, end=end)
    for row in totals["launched"]:
        facts.add(row["day"], "models.finetunes_launched", row["n"])
    for row in totals["finished"]:
        if row["state"] in ("succeeded", "failed"):
            facts.add(row["day"], f"models.finetunes_{row['state']}", row["n"])
    for row in totals["registered"]:
        facts.add(row["day"], "models.versions_registered", row["n"])

    # Deployment is a flag on the model version; its history is in the audit trail.
    events = accounts_selectors.audit_events_for(actions=["model_version.deploy", "model_version.undeploy"])
    if not events:
        return
    deployed: set[str] = set()
    serving_by_day: dict[date, int] = {}
    for event in events:
        day = _as_date(event["created_at"])
        if event["action"] == "model_version.deploy":
            if start <= event["created_at"] < end:
                facts.add(day, "models.versions_deployed", 1)
            deployed.add(event["object_id"])
        else:
            deployed.discard(event["object_id"])
        serving_by_day[day] = len(deployed)
    serving, day = 0, _as_date(events[0]["created_at"])
    for known_day in sorted(d for d in serving_by_day if d < first):
        serving = serving_by_day[known_day]
    day = max(day, first)
    while day <= today:
        serving = serving_by_day.get(day, serving)
        facts.set(day, "models.deployed_total", serving)
        day += timedelta(days=1)


def _inference_facts(facts: _Facts, start, end) -> None:
    for row in inference_selectors.inference_daily_totals(start=start, end=end):
        scopes = [GLOBAL] + ([(ScopeKind.MODEL, row["model_version_hash"])] if row["model_version_hash"] else [])
        facts.add(row["day"], "infer.requests", row["n"], *scopes)
        if row["status"] == "failed":
            facts.add(row["day"], "infer.requests_failed", row["n"], *scopes)
        facts.add(row["day"], "infer.tokens_in", row["tokens_in"], *scopes)
        facts.add(row["day"], "infer.tokens_out", row["tokens_out"], *scopes)
    latencies = defaultdict(list)
    for created, model_hash, latency in inference_selectors.inference_latencies(start=start, end=end):
        day = _as_date(created)
        scopes = [GLOBAL] + ([(ScopeKind.MODEL, model_hash)] if model_hash else [])
        for scope in scopes:
            latencies[(day, Grain.DAY, scope)].append(latency)
            latencies[(week_start(day), Grain.WEEK, scope)].append(latency)
    for (day, grain, scope), values in latencies.items():
        facts.set(day, "infer.latency_p50_ms", _percentile(values, 50), scope, grain=grain)
        facts.set(day, "infer.latency_p99_ms", _percentile(values, 99), scope, grain=grain)


def serving_sample_take(stats: dict | None = None) -> int:
    """Record the model server's cumulative adapter-cache counters (one row per base). Returns how many
    bases were sampled; 0 when the model server does not answer."""
    stats = inference_selectors.model_server_stats() if stats is None else stats
    if not stats:
        return 0
    now, rows = timezone.now(), []
    for base, engine in (stats.get("bases") or {}).items():
        cache = engine.get("cache") or {}
        device, host = cache.get("device") or {}, cache.get("host") or {}
        rows.append(ServingSample(taken_at=now, base=str(base)[:120], device_hits=device.get("hits", 0),
                                  device_misses=device.get("misses", 0), host_hits=host.get("hits", 0),
                                  host_misses=host.get("misses", 0)))
    ServingSample.objects.bulk_create(rows)
    return len(rows)


def counter_increases(samples) -> list[tuple]:
    """[(time, hits increase, misses increase)] between consecutive samples of one base, oldest first.
    A counter lower than the one before means the server restarted: its new value is the increase."""
    increases, previous = [], None
    for sample in samples:
        if previous is not None:
            hits = sample.device_hits - previous.device_hits
            misses = sample.device_misses - previous.device_misses
            if hits < 0 or misses < 0:
                hits, misses = sample.device_hits, sample.device_misses
            increases.append((sample.taken_at, hits, misses))
        previous = sample
    return increases


def _serving_facts(facts: _Facts, start, end) -> None:
    by_base = defaultdict(list)
    # The last sample before the window is the baseline of the window's first increase.
    baseline = {}
    for sample in ServingSample.objects.filter(taken_at__lt=start).order_by("base", "-taken_at"):
        baseline.setdefault(sample.base, sample)
    for sample in ServingSample.objects.filter(taken_at__gte=start, taken_at__lt=end).order_by("taken_at", "id"):
        by_base[sample.base].append(sample)
    for base, samples in by_base.items():
        chain = ([baseline[base]] if base in baseline else []) + samples
        for taken_at, hits, misses in counter_increases(chain):
            day = _as_date(taken_at)
            facts.add(day, "serving.cache_hits", hits, GLOBAL, (ScopeKind.BASE, base))
            facts.add(day, "serving.cache_misses", misses, GLOBAL, (ScopeKind.BASE, base))


def _developer_facts(facts: _Facts, start, end, first: date, today: date) -> None:
    daily_keys, weekly_keys = defaultdict(set), defaultdict(set)
    daily_users, weekly_users = defaultdict(set), defaultdict(set)
    rows = ApiCallCount.objects.filter(day__gte=first, day__lte=today).values_list("day", "api_key_id", "user_id",
                                                                                  "scope", "calls")
    for day, key_id, user_id, scope, calls in rows.iterator(chunk_size=5000):
        facts.add(day, "dev.api_calls", calls, GLOBAL, (ScopeKind.API_SCOPE, scope))
        daily_keys[day].add(key_id)
        weekly_keys[week_start(day)].add(key_id)
        daily_users[day].add(user_id)
        weekly_users[week_start(day)].add(user_id)
    for metric, daily, weekly in (("dev.active_api_keys", daily_keys, weekly_keys),
                                  ("dev.active_api_users", daily_users, weekly_users)):
        for day, members in daily.items():
            facts.set(day, metric, len(members))
        for week, members in weekly.items():
            facts.set(week, metric, len(members), grain=Grain.WEEK)
    for row in accounts_selectors.api_keys_created_daily(start=start, end=end):
        facts.add(row["day"], "dev.api_keys_created", row["n"])


def _reward_facts(facts: _Facts, start, end) -> None:
    for row in rewards_selectors.settlement_daily_totals(start=start, end=end):
        scopes = [GLOBAL] + ([(ScopeKind.MODEL, row["model_version_hash"])] if row["model_version_hash"] else [])
        facts.add(row["day"], "rewards.settlements", row["settlements"], *scopes)
        facts.add(row["day"], "rewards.fees", _open(row["fee"]), *scopes)
        facts.add(row["day"], "rewards.to_contributors", _open(row["contributors"]), *scopes)
        facts.add(row["day"], "rewards.to_owners", _open(row["owner"]), *scopes)
        facts.add(row["day"], "rewards.to_protocol", _open(row["protocol"]), *scopes)
    for row in rewards_selectors.contributor_earnings_daily(start=start, end=end):
        facts.add(row["day"], "rewards.earned", _open(row["amount"]), (ScopeKind.USER, row["user_id"]))
    for row in rewards_selectors.claims_daily_totals(start=start, end=end):
        facts.add(row["day"], "rewards.claimed", _open(row["amount"]))


def _retention(first_week: dict, active_weeks: dict, kind: str, this_week: date, *, synthetic=False, now=None):
    """CohortRetention rows: per cohort week, members active n weeks later (n = 0 is the cohort itself)."""
    cohorts = defaultdict(set)
    for member, week in first_week.items():
        cohorts[week].add(member)
    rows = []
    for week, members in sorted(cohorts.items()):
        for n in range((this_week - week).days // 7 + 1):
            target = week + timedelta(weeks=n)
            active = sum(1 for m in members if target in active_weeks.get(m, ()))
            rows.append(CohortRetention(kind=kind, cohort_week=week, weeks_after=n, cohort_size=len(members),
                                        active=active, synthetic=synthetic, computed_at=now or timezone.now()))
    return rows


def _cohort_rows(today: date, first_contributions: list[tuple]) -> list[CohortRetention]:
    this_week = week_start(today)
    oldest = this_week - timedelta(weeks=settings.INSIGHTS_COHORT_WEEKS - 1)
    window_start, window_end = midnight(oldest), midnight(today + timedelta(days=1))

    first_week = {}
    for user_id, _datanet_id, first in first_contributions:
        week = week_start(_as_date(first))
        first_week[user_id] = min(week, first_week.get(user_id, week))
    first_week = {u: w for u, w in first_week.items() if w >= oldest}
    active = defaultdict(set)
    for day, _datanet_id, user_id in datanet_selectors.contributor_activity(start=window_start, end=window_end):
        active[user_id].add(week_start(day))
    rows = _retention(first_week, active, CohortKind.CONTRIBUTORS, this_week)

    api_first = {u: week_start(d) for u, d in ApiCallCount.objects.values("user_id").annotate(first=Min("day"))
                 .values_list("user_id", "first")}
    api_first = {u: w for u, w in api_first.items() if w >= oldest}
    api_active = defaultdict(set)
    for user_id, day in ApiCallCount.objects.filter(day__gte=oldest).values_list("user_id", "day").distinct():
        api_active[user_id].add(week_start(day))
    return rows + _retention(api_first, api_active, CohortKind.API_USERS, this_week)


def _epoch_rows() -> list[EpochSummary]:
    now = timezone.now()
    return [EpochSummary(number=e["number"], state=e["state"], frozen_at=e["frozen_at"], closed_at=e["closed_at"],
                         accrued=_open(e["accrued"]), funded=_open(e["funded"]), claimed=_open(e["claimed"]),
                         recipients=e["recipients"], synthetic=False, computed_at=now)
            for e in rewards_selectors.epochs_overview()]


# --- history_generate -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HistoryReport:
    first_day: date
    last_day: date
    facts: int
    cohorts: int
    epochs: int


def history_generate(*, days: int = 365, seed: int = 0) -> HistoryReport:
    """Write `days` days of plausible synthetic history, ending yesterday, flagged `synthetic`.

    For demos and tests only. The same seed writes the same numbers; earlier synthetic rows are replaced
    and real rows are never touched. Per-Datanet, per-model and per-user series are attached to the public
    Datanets, deployed model versions and contributors that exist when it runs (so call it after they are
    created); pages mark every synthetic point."""
    import numpy as np

    if not isinstance(days, int) or days < 1 or days > 3660:
        raise ValueError("days must be an integer between 1 and 3660")
    rng = np.random.default_rng(seed)
    today = timezone.now().astimezone(UTC).date()
    first_day, last_day = today - timedelta(days=days), today - timedelta(days=1)
    from django.contrib.auth.models import AnonymousUser

    datanets = sorted(datanet_selectors.datanet_ids_visible_to(user=AnonymousUser()))
    models = sorted(h for h, v in registry_selectors.model_versions_index().items() if v["deployed"])
    earners = sorted({u for u, _d, _f in datanet_selectors.contributor_first_contributions()})[:20] or [
        f"synthetic-{n}" for n in range(1, 6)]
    datanet_weights = rng.dirichlet(np.ones(len(datanets)) * 2) if datanets else None
    model_weights = rng.dirichlet(np.ones(len(models)) * 2) if models else None
    earner_weights = rng.dirichlet(np.ones(len(earners)))

    facts = _Facts()
    weekly = defaultdict(lambda: defaultdict(list))  # (metric, scope) -> week -> daily values
    serving = 1
    contributors_new = defaultdict(int)
    accrued_by_week = defaultdict(float)
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        t = offset / max(days - 1, 1)
        growth = 0.05 + 0.95 / (1 + math.exp(-9 * (t - 0.45)))
        weekday = 0.6 if day.weekday() >= 5 else 1.0
        level = growth * weekday * float(rng.lognormal(0, 0.12))

        def split(total, weights):
            return rng.multinomial(int(total), weights) if weights is not None else []

        submitted = int(rng.poisson(1500 * level))
        invalid = int(rng.binomial(submitted, 0.06))
        duplicate = int(rng.binomial(submitted - invalid, 0.04))
        near = int(rng.binomial(submitted - invalid - duplicate, 0.03))
        decided = submitted - invalid - duplicate
        accepted = int(rng.binomial(decided, 0.78 + 0.1 * t))
        uploads = max(int(rng.poisson(40 * level)), 1 if submitted else 0)
        new = int(rng.poisson(10 * level))
        active = new + int(rng.poisson(45 * level))
        contributors_new[week_start(day)] += new
        for metric, value in (("contrib.contributions", uploads), ("contrib.rows_submitted", submitted),
                              ("contrib.rows_invalid", invalid), ("contrib.rows_rejected", invalid + decided - accepted),
                              ("contrib.rows_duplicate", duplicate), ("contrib.rows_near_duplicate", near),
                              ("contrib.rows_accepted", accepted), ("contrib.new_contributors", new)):
            facts.add(day, metric, value)
            for datanet_id, part in zip(datanets, split(value, datanet_weights), strict=False):
                facts.add(day, metric, int(part), (ScopeKind.DATANET, datanet_id))
        facts.set(day, "contrib.active_contributors", active)
        weekly[("contrib.active_contributors", GLOBAL)][week_start(day)].append(active)
        for datanet_id, part in zip(datanets, split(active, datanet_weights), strict=False):
            facts.set(day, "contrib.active_contributors", int(part), (ScopeKind.DATANET, datanet_id))
            weekly[("contrib.active_contributors", (ScopeKind.DATANET, datanet_id))][week_start(day)].append(int(part))

        launched = int(rng.poisson(3 * growth))
        succeeded = int(rng.binomial(launched, 0.85))
        deployed = int(rng.binomial(succeeded, 0.5))
        serving = max(serving + deployed - int(rng.binomial(serving, 0.01)), 0)
        for metric, value in (("models.finetunes_launched", launched), ("models.finetunes_succeeded", succeeded),
                              ("models.finetunes_failed", launched - succeeded),
                              ("models.versions_registered", succeeded), ("models.versions_deployed", deployed)):
            facts.add(day, metric, value)
        facts.set(day, "models.deployed_total", serving)

        requests = int(rng.poisson(20000 * level))
        failed = int(rng.binomial(requests, 0.01))
        answered = requests - failed
        tokens_in, tokens_out = int(rng.poisson(35 * max(requests, 1))), int(rng.poisson(18 * max(answered, 1)))
        p50 = float(28 + 14 * (1 - t) + rng.normal(0, 2))
        p99 = float(p50 * (5.5 - 2 * t) + rng.normal(0, 10))
        hits = int(rng.binomial(requests, min(0.8 + 0.16 * t, 0.99)))
        fees = answered * 0.001
        shares = {"rewards.to_contributors": fees * 0.6, "rewards.to_owners": fees * 0.3,
                  "rewards.to_protocol": fees * 0.1}
        accrued_by_week[week_start(day)] += fees * 0.9
        model_parts = split(requests, model_weights)
        for metric, value in (("infer.requests", requests), ("infer.requests_failed", failed),
                              ("infer.tokens_in", tokens_in), ("infer.tokens_out", tokens_out),
                              ("rewards.settlements", answered)):
            facts.add(day, metric, value)
            for model_hash, part in zip(models, split(value, model_weights), strict=False):
                facts.add(day, metric, int(part), (ScopeKind.MODEL, model_hash))
        for metric, value in (("rewards.fees", fees), *shares.items()):
            facts.add(day, metric, value)
            for model_hash, part in zip(models, model_parts, strict=False):
                facts.add(day, metric, value * part / max(requests, 1), (ScopeKind.MODEL, model_hash))
        for scope in [GLOBAL] + [(ScopeKind.MODEL, h) for h in models]:
            facts.set(day, "infer.latency_p50_ms", p50, scope)
            facts.set(day, "infer.latency_p99_ms", p99, scope)
            weekly[("infer.latency_p50_ms", scope)][week_start(day)].append(p50)
            weekly[("infer.latency_p99_ms", scope)][week_start(day)].append(p99)
        facts.add(day, "serving.cache_hits", hits)
        facts.add(day, "serving.cache_misses", requests - hits)
        for user, part in zip(earners, rng.multinomial(1000, earner_weights), strict=True):
            facts.add(day, "rewards.earned", shares["rewards.to_contributors"] * part / 1000, (ScopeKind.USER, user))
        if day.weekday() == 1:  # claims cluster after the Monday epoch close
            facts.add(day, "rewards.claimed", accrued_by_week.get(week_start(day) - timedelta(weeks=1), 0) * 0.8)

        calls = {"infer": requests, "read": int(rng.poisson(requests * 0.15 + 20 * level)),
                 "contribute": uploads, "train": launched * 3 + int(rng.poisson(2 * growth))}
        for scope, value in calls.items():
            facts.add(day, "dev.api_calls", value, GLOBAL, (ScopeKind.API_SCOPE, scope))
        active_keys = int(rng.poisson(220 * growth * weekday)) + 1
        facts.set(day, "dev.active_api_keys", active_keys)
        facts.set(day, "dev.active_api_users", max(int(active_keys * 0.7), 1))
        weekly[("dev.active_api_keys", GLOBAL)][week_start(day)].append(active_keys)
        weekly[("dev.active_api_users", GLOBAL)][week_start(day)].append(max(int(active_keys * 0.7), 1))
        facts.add(day, "dev.api_keys_created", int(rng.poisson(4 * growth)))

    # Weekly figures that do not add up: distinct people ~ a multiple of a typical day; percentiles averaged.
    for (metric, scope), per_week in weekly.items():
        for week, values in per_week.items():
            factor = 2.4 if metric.startswith(("contrib.active", "dev.active")) else 1.0
            facts.set(week, metric, round(sum(values) / len(values) * factor, 1), scope, grain=Grain.WEEK)

    now = timezone.now()
    rows = facts.rows(synthetic=True, now=now)
    cohorts = _synthetic_cohorts(rng, contributors_new, first_day, last_day, now)
    epochs = _synthetic_epochs(rng, accrued_by_week, last_day, now)
    with transaction.atomic():
        state = _state_locked()
        MetricFact.objects.filter(synthetic=True).delete()
        CohortRetention.objects.filter(synthetic=True).delete()
        EpochSummary.objects.filter(synthetic=True).delete()
        MetricFact.objects.bulk_create(rows, batch_size=2000)
        CohortRetention.objects.bulk_create(cohorts, batch_size=2000)
        EpochSummary.objects.bulk_create(epochs, batch_size=2000)
        state.history_generated_at = now
        state.save(update_fields=["history_generated_at"])
        audit_record(actor=None, action="insights.history_generate", object_type="insights.metricfact",
                     details={"days": days, "seed": seed, "facts": len(rows), "first_day": first_day,
                              "last_day": last_day})
    return HistoryReport(first_day=first_day, last_day=last_day, facts=len(rows), cohorts=len(cohorts),
                         epochs=len(epochs))


def _synthetic_cohorts(rng, new_by_week, first_day, last_day, now) -> list[CohortRetention]:
    this_week = week_start(last_day)
    rows = []
    for kind, size_factor, floor in ((CohortKind.CONTRIBUTORS, 1.0, 0.12), (CohortKind.API_USERS, 0.6, 0.25)):
        for week, new in sorted(new_by_week.items()):
            size = max(int(new * size_factor), 1)
            for n in range((this_week - week).days // 7 + 1):
                share = 1.0 if n == 0 else min(1.0, floor + (0.55 - floor) * math.exp(-(n - 1) / 5)
                                               + float(rng.normal(0, 0.03)))
                rows.append(CohortRetention(kind=kind, cohort_week=week, weeks_after=n, cohort_size=size,
                                            active=max(0, min(size, round(size * share))), synthetic=True,
                                            computed_at=now))
    return rows


def _synthetic_epochs(rng, accrued_by_week, last_day, now) -> list[EpochSummary]:
    epochs = []
    for number, week in enumerate(sorted(w for w in accrued_by_week if w + timedelta(weeks=1) <= last_day), start=1):
        accrued = accrued_by_week[week]
        frozen = midnight(week + timedelta(weeks=1))
        epochs.append(EpochSummary(number=number, state="closed", frozen_at=frozen,
                                   closed_at=frozen + timedelta(minutes=12), accrued=accrued, funded=accrued,
                                   claimed=accrued * float(rng.uniform(0.6, 0.9)),
                                   recipients=int(rng.poisson(30 + number)), synthetic=True, computed_at=now))
    return epochs
