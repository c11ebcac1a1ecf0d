"""`summaries_refresh` reads every app through its selectors, computes all facts of the days from `since`
(aligned back to a Monday, so weekly figures are whole) to today, then replaces the real facts of those
days in one short transaction under a lock on `RefreshState`. Running it twice gives the same tables:
it is an idempotent upsert per day, and the beat task runs it every few minutes for the recent days.
It writes no audit row: it changes no one's data, only derived figures, and runs every few minutes.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from accounts import selectors as accounts_selectors
from accounts.models import AuditAction
from datanets import selectors as datanet_selectors
from inference import selectors as inference_selectors
from models_registry import selectors as registry_selectors
from rewards import selectors as rewards_selectors

from ..models import (
    ApiCallCount,
    CohortKind,
    CohortRetention,
    EpochSummary,
    Grain,
    MetricFact,
    ScopeKind,
    ServingSample,
)
from .facts import EPOCH_START, GLOBAL, OPEN, Facts, as_date, midnight, state_locked, week_start
from .serving import counter_increases, serving_sample_take


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
    first = EPOCH_START if since is None else min(as_date(since), today)
    first = week_start(first)
    if sample_serving:
        serving_sample_take()
    facts = Facts()
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
    with transaction.atomic(durable=True):
        state = state_locked()
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


def _contribution_facts(facts: Facts, start, end, first_contributions: list[tuple]) -> None:
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
            facts.add(as_date(first), "contrib.new_contributors", 1, (ScopeKind.DATANET, datanet_id))
        first_seen[user_id] = min(first, first_seen.get(user_id, first))
    for first in first_seen.values():
        if start <= first < end:
            facts.add(as_date(first), "contrib.new_contributors", 1)

    daily, weekly = defaultdict(set), defaultdict(set)
    for day, datanet_id, user_id in datanet_selectors.contributor_activity(start=start, end=end):
        for scope in (GLOBAL, (ScopeKind.DATANET, str(datanet_id))):
            daily[(day, scope)].add(user_id)
            weekly[(week_start(day), scope)].add(user_id)
    for (day, scope), users in daily.items():
        facts.set(day, "contrib.active_contributors", len(users), scope)
    for (week, scope), users in weekly.items():
        facts.set(week, "contrib.active_contributors", len(users), scope, grain=Grain.WEEK)


def _model_facts(facts: Facts, start, end, first: date, today: date) -> None:
    totals = registry_selectors.fine_tune_daily_totals(start=start, end=end)
    for row in totals["launched"]:
        facts.add(row["day"], "models.finetunes_launched", row["n"])
    for row in totals["finished"]:
        if row["state"] in ("succeeded", "failed"):
            facts.add(row["day"], f"models.finetunes_{row['state']}", row["n"])
    for row in totals["registered"]:
        facts.add(row["day"], "models.versions_registered", row["n"])

    # Deployment is a flag on the model version; its history is in the audit trail.
    events = accounts_selectors.audit_events_for(actions=[AuditAction.MODEL_VERSION_DEPLOY,
                                                          AuditAction.MODEL_VERSION_UNDEPLOY])
    if not events:
        return
    deployed: set[str] = set()
    serving_by_day: dict[date, int] = {}
    for event in events:
        day = as_date(event["created_at"])
        if event["action"] == AuditAction.MODEL_VERSION_DEPLOY:
            if start <= event["created_at"] < end:
                facts.add(day, "models.versions_deployed", 1)
            deployed.add(event["object_id"])
        else:
            deployed.discard(event["object_id"])
        serving_by_day[day] = len(deployed)
    serving, day = 0, as_date(events[0]["created_at"])
    for known_day in sorted(d for d in serving_by_day if d < first):
        serving = serving_by_day[known_day]
    day = max(day, first)
    while day <= today:
        serving = serving_by_day.get(day, serving)
        facts.set(day, "models.deployed_total", serving)
        day += timedelta(days=1)


def _inference_facts(facts: Facts, start, end) -> None:
    for row in inference_selectors.inference_daily_totals(start=start, end=end):
        scopes = [GLOBAL] + ([(ScopeKind.MODEL, row["model_version_hash"])] if row["model_version_hash"] else [])
        facts.add(row["day"], "infer.requests", row["n"], *scopes)
        if row["status"] == "failed":
            facts.add(row["day"], "infer.requests_failed", row["n"], *scopes)
        facts.add(row["day"], "infer.tokens_in", row["tokens_in"], *scopes)
        facts.add(row["day"], "infer.tokens_out", row["tokens_out"], *scopes)
    latencies = defaultdict(list)
    for created, model_hash, latency in inference_selectors.inference_latencies(start=start, end=end):
        day = as_date(created)
        scopes = [GLOBAL] + ([(ScopeKind.MODEL, model_hash)] if model_hash else [])
        for scope in scopes:
            latencies[(day, Grain.DAY, scope)].append(latency)
            latencies[(week_start(day), Grain.WEEK, scope)].append(latency)
    for (day, grain, scope), values in latencies.items():
        facts.set(day, "infer.latency_p50_ms", _percentile(values, 50), scope, grain=grain)
        facts.set(day, "infer.latency_p99_ms", _percentile(values, 99), scope, grain=grain)


def _serving_facts(facts: Facts, start, end) -> None:
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
            day = as_date(taken_at)
            facts.add(day, "serving.cache_hits", hits, GLOBAL, (ScopeKind.BASE, base))
            facts.add(day, "serving.cache_misses", misses, GLOBAL, (ScopeKind.BASE, base))


def _developer_facts(facts: Facts, start, end, first: date, today: date) -> None:
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


def _reward_facts(facts: Facts, start, end) -> None:
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
        week = week_start(as_date(first))
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
