"""A year of generated history for the dashboards (demos, tests, `bench/insights.py`): plausible daily
figures for every metric, per public Datanet, deployed model version and contributor, flagged
`synthetic` and written through `insights.services.synthetic_history_replace`. `seed_demo` runs it once
(`story.dashboards_refresh`)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.utils import timezone

from datanets import selectors as datanet_selectors
from insights import services as insights_services
from insights.services import GLOBAL, CohortKind, Facts, Grain, ScopeKind, midnight, week_start
from models_registry import selectors as registry_selectors


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

    facts = Facts()
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
    cohorts = _synthetic_cohorts(rng, contributors_new, first_day, last_day)
    epochs = _synthetic_epochs(rng, accrued_by_week, last_day)
    written = insights_services.synthetic_history_replace(facts=facts, cohorts=cohorts, epochs=epochs, now=now,
                                                          days=days, seed=seed, first_day=first_day,
                                                          last_day=last_day)
    return HistoryReport(first_day=first_day, last_day=last_day, facts=written, cohorts=len(cohorts),
                         epochs=len(epochs))


def _synthetic_cohorts(rng, new_by_week, first_day, last_day) -> list[dict]:
    """Retention cohorts (the fields of `insights.models.CohortRetention`) from the new contributors per week."""
    this_week = week_start(last_day)
    rows = []
    for kind, size_factor, floor in ((CohortKind.CONTRIBUTORS, 1.0, 0.12), (CohortKind.API_USERS, 0.6, 0.25)):
        for week, new in sorted(new_by_week.items()):
            size = max(int(new * size_factor), 1)
            for n in range((this_week - week).days // 7 + 1):
                share = 1.0 if n == 0 else min(1.0, floor + (0.55 - floor) * math.exp(-(n - 1) / 5)
                                               + float(rng.normal(0, 0.03)))
                rows.append({"kind": kind, "cohort_week": week, "weeks_after": n, "cohort_size": size,
                             "active": max(0, min(size, round(size * share)))})
    return rows


def _synthetic_epochs(rng, accrued_by_week, last_day) -> list[dict]:
    """Weekly closed epochs (the fields of `insights.models.EpochSummary`) from the fees accrued per week."""
    epochs = []
    for number, week in enumerate(sorted(w for w in accrued_by_week if w + timedelta(weeks=1) <= last_day), start=1):
        accrued = accrued_by_week[week]
        frozen = midnight(week + timedelta(weeks=1))
        epochs.append({"number": number, "state": "closed", "frozen_at": frozen,
                       "closed_at": frozen + timedelta(minutes=12), "accrued": accrued, "funded": accrued,
                       "claimed": accrued * float(rng.uniform(0.6, 0.9)), "recipients": int(rng.poisson(30 + number))})
    return epochs
