"""Reads for the dashboards: charts, retention, epochs and top earners, from the summary tables only.

A range is parsed once (`window_parse`) into a `Window`; everything else takes it. A day that has any real
fact is a measured day and its synthetic facts are ignored (a refresh stores no zeros, so a missing real
fact there is a measured zero); elsewhere a real fact wins over a synthetic one of the same key. Every
bucket that used a synthetic fact is flagged, so generated history is shown as such and never silently
summed into measured figures.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Min
from django.utils import timezone

from .catalog import BUCKETS, METRICS, RANGE_MAX_DAYS, RETENTION_WEEKS_SHOWN, Chart
from .models import CohortKind, CohortRetention, EpochSummary, Grain, MetricFact, RefreshState, ScopeKind

DEFAULT_RANGE = "90d"
RANGE_PATTERN = re.compile(r"^(\d{1,6})([dw])$")
WEEKLY_BY_DEFAULT_AFTER_DAYS = 120


class InvalidWindow(ValueError):
    """A bad `range` or `bucket` parameter: `field` names it, the message says what would work."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Window:
    range: str
    bucket: str
    start: date  # first day shown (a Monday when bucket is week)
    end: date  # last day shown (today)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def buckets(self) -> list[date]:
        step = timedelta(days=7 if self.bucket == "week" else 1)
        out, day = [], self.start
        while day <= self.end:
            out.append(day)
            day += step
        return out

    def bucket_of(self, day: date) -> date:
        return day - timedelta(days=day.weekday()) if self.bucket == "week" else day

    def as_dict(self) -> dict:
        return {"range": self.range, "bucket": self.bucket, "start": self.start.isoformat(),
                "end": self.end.isoformat()}


def today_utc() -> date:
    return timezone.now().astimezone(UTC).date()


def window_parse(*, range_value: str | None = None, bucket: str | None = None, today: date | None = None) -> Window:
    """`range`: `<n>d`, `<n>w` (up to RANGE_MAX_DAYS days) or `all` (from the first summary); default 90d.
    `bucket`: `day` or `week`; by default days up to 120 days, weeks beyond. Raises `InvalidWindow`."""
    today = today or today_utc()
    range_value = (range_value or DEFAULT_RANGE).strip().lower()
    if range_value == "all":
        first = MetricFact.objects.aggregate(first=Min("day"))["first"]
        days = (today - first).days + 1 if first and first <= today else 30
    else:
        match = RANGE_PATTERN.match(range_value)
        if not match:
            raise InvalidWindow("range", f"'{range_value[:40]}' is not a range: use a number of days or weeks such "
                                         "as 7d, 90d or 12w, or 'all'.")
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        if not 1 <= days <= RANGE_MAX_DAYS:
            raise InvalidWindow("range", f"The range must be between 1 and {RANGE_MAX_DAYS} days; "
                                         f"'{range_value}' is {days} days.")
    if bucket in (None, ""):
        bucket = "week" if days > WEEKLY_BY_DEFAULT_AFTER_DAYS else "day"
    bucket = str(bucket).strip().lower()
    if bucket not in BUCKETS:
        raise InvalidWindow("bucket", f"'{bucket[:40]}' is not a bucket: use one of {', '.join(BUCKETS)}.")
    start = today - timedelta(days=days - 1)
    if bucket == "week":
        start -= timedelta(days=start.weekday())
    return Window(range=range_value, bucket=bucket, start=start, end=today)


# --- Facts ----------------------------------------------------------------------------------------------------

class _FactTable:
    """The facts one page needs, loaded in one query; real facts shadow synthetic ones of the same key."""

    def __init__(self, *, metrics, scopes, window: Window, include_synthetic: bool):
        self.window = window
        self.day: dict[tuple, dict[date, tuple[float, bool]]] = defaultdict(dict)
        self.week: dict[tuple, dict[date, tuple[float, bool]]] = defaultdict(dict)
        scopes = set(scopes)
        queryset = MetricFact.objects.filter(
            metric__in=list(metrics), scope_kind__in={k for k, _ in scopes}, scope_id__in={i for _, i in scopes},
            day__gte=window.start - timedelta(days=window.start.weekday()), day__lte=window.end,
        )
        if not include_synthetic:
            queryset = queryset.filter(synthetic=False)
        measured = measured_days(start=window.start, end=window.end) if include_synthetic else set()
        # Synthetic first, so a real fact for the same key overwrites it.
        rows = queryset.order_by("-synthetic").values_list("day", "grain", "metric", "scope_kind", "scope_id",
                                                          "value", "synthetic")
        for day, grain, metric, scope_kind, scope_id, value, synthetic in rows:
            if (scope_kind, scope_id) not in scopes:
                continue
            if synthetic and grain == Grain.DAY and day in measured:
                continue  # a measured day is shown as measured, its zeros included
            target = self.week if grain == Grain.WEEK else self.day
            target[(metric, scope_kind, scope_id)][day] = (value, synthetic)

    def series(self, metric: str, scope: tuple) -> tuple[list, list]:
        """(values, synthetic flags) per bucket of the window."""
        spec, window = METRICS[metric], self.window
        days, weeks = self.day.get((metric, *scope), {}), self.week.get((metric, *scope), {})
        values, flags = [], []
        if spec.weekly == "sum":
            sums, synth = defaultdict(float), defaultdict(bool)
            for day, (value, synthetic) in days.items():
                if window.start <= day <= window.end:
                    bucket = window.bucket_of(day)
                    sums[bucket] += value
                    synth[bucket] |= synthetic
            for bucket in window.buckets():
                values.append(sums.get(bucket, 0.0))
                flags.append(synth.get(bucket, False))
        elif spec.weekly == "last":
            known = sorted(days.items())
            position, current = 0, (None, False)
            for bucket in window.buckets():
                last_day = bucket + timedelta(days=6) if window.bucket == "week" else bucket
                while position < len(known) and known[position][0] <= last_day:
                    current = known[position][1]
                    position += 1
                values.append(current[0])
                flags.append(current[1])
        else:  # "own": a fact per day, and one per week
            source = weeks if window.bucket == "week" else days
            for bucket in window.buckets():
                value, synthetic = source.get(bucket, (None, False))
                values.append(value)
                flags.append(synthetic)
        return values, flags


def measured_days(*, start: date, end: date) -> set[date]:
    """Days with at least one real fact: on those, every synthetic fact is ignored. A refresh computes all
    metrics of a day at once and stores no zeros, so a real day's missing fact means a measured zero."""
    return set(MetricFact.objects.filter(synthetic=False, grain=Grain.DAY, day__gte=start, day__lte=end)
               .values_list("day", flat=True).distinct())


def _round(value):
    if value is None:
        return None
    return round(value, 6) if abs(value) < 1000 else round(value, 2)


def _chart_data(chart: Chart, table: _FactTable, scope: tuple) -> dict:
    window = table.window
    labels = [b.isoformat() for b in window.buckets()]
    synthetic = [False] * len(labels)
    series = []
    for spec in chart.series:
        series_scope = (spec.scope_kind or scope[0], spec.scope_id if spec.scope_id is not None else scope[1])
        if spec.ratio:
            numerator, flags = table.series(spec.ratio[0], series_scope)
            denominator = [0.0] * len(labels)
            for metric in spec.ratio[1]:
                part, part_flags = table.series(metric, series_scope)
                denominator = [a + (b or 0) for a, b in zip(denominator, part, strict=True)]
                flags = [a or b for a, b in zip(flags, part_flags, strict=True)]
            scale = 100 if spec.percent else 1
            values = [None if not d else scale * (n or 0) / d for n, d in zip(numerator, denominator, strict=True)]
            total_n, total_d = sum(n or 0 for n in numerator), sum(denominator)
            total = None if not total_d else scale * total_n / total_d
            total_kind = "overall"
        else:
            values, flags = table.series(spec.metric, series_scope)
            weekly = METRICS[spec.metric].weekly
            present = [v for v in values if v is not None]
            if weekly == "sum":
                total, total_kind = sum(present), "total"
            elif weekly == "last":
                total, total_kind = (present[-1] if present else None), "latest"
            else:
                total, total_kind = (sum(present) / len(present) if present else None), "average"
        synthetic = [a or b for a, b in zip(synthetic, flags, strict=True)]
        series.append({"key": spec.key, "label": spec.label, "values": [_round(v) for v in values],
                       "total": _round(total), "total_kind": total_kind})
    empty = all(not v for s in series for v in s["values"])
    return {
        "id": chart.id, "title": chart.title, "description": chart.description, "unit": chart.unit,
        "kind": chart.kind, "stacked": chart.stacked, "section": chart.section,
        "labels": labels, "series": series, "synthetic": synthetic, "empty": empty,
        "any_synthetic": any(synthetic), "summary": _summary(chart, series, window, empty),
    }


def _number(value, unit: str) -> str:
    if value is None:
        return "no value"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "OPEN":
        return f"{value:,.4f} OPEN".rstrip("0").rstrip(".") if value < 1000 else f"{value:,.0f} OPEN"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}" if float(value).is_integer() else f"{value:,.1f} {unit}"


def _summary(chart: Chart, series: list, window: Window, empty: bool) -> str:
    """One sentence per chart for screen readers (the canvas's label) and the table caption."""
    period = f"{window.start:%-d %b %Y} to {window.end:%-d %b %Y}, by {window.bucket}"
    if empty:
        return f"{chart.title}: no data yet for {period}."
    parts = []
    for s in series:
        present = [(v, label) for v, label in zip(s["values"], range(len(s["values"])), strict=True) if v is not None]
        peak = max(present, default=(None, None))[0]
        parts.append(f"{s['label']} {s['total_kind']} {_number(s['total'], chart.unit)}"
                     + (f" (peak {_number(peak, chart.unit)})" if peak is not None and s["total_kind"] == "total"
                        else ""))
    return f"{chart.title}, {period}: " + "; ".join(parts) + "."


def _summaries_stamp() -> tuple:
    """Changes whenever the summary tables do (a refresh, or generated history)."""
    return tuple(RefreshState.objects.filter(pk=1).values_list("last_finished_at", "history_generated_at").first()
                 or ())


def dashboard(*, charts, window: Window, scope_kind: str = ScopeKind.GLOBAL, scope_id: str = "",
              include_synthetic: bool = True) -> dict:
    """Chart data for `charts` over `window` for one scope: labels, series, synthetic flags, summaries.

    Cached for INSIGHTS_CACHE_S under a key that includes the summaries' last change, so a refresh shows
    at once; it holds nothing user-specific (visibility is applied by the callers)."""
    key = "insights:dashboard:" + hashlib.sha256(repr((
        [c.id for c in charts], window.as_dict(), scope_kind, str(scope_id), include_synthetic, _summaries_stamp(),
    )).encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached
    data = _dashboard(charts=charts, window=window, scope_kind=scope_kind, scope_id=scope_id,
                      include_synthetic=include_synthetic)
    cache.set(key, data, settings.INSIGHTS_CACHE_S)
    return data


def _dashboard(*, charts, window: Window, scope_kind: str, scope_id: str, include_synthetic: bool) -> dict:
    scope = (scope_kind, str(scope_id))
    metrics, scopes = set(), {scope}
    for chart in charts:
        metrics |= chart.metrics()
        for spec in chart.series:
            scopes.add((spec.scope_kind or scope[0], spec.scope_id if spec.scope_id is not None else scope[1]))
    table = _FactTable(metrics=metrics, scopes=scopes, window=window, include_synthetic=include_synthetic)
    data = [_chart_data(chart, table, scope) for chart in charts]
    return {
        "window": window.as_dict(), "scope": {"kind": scope[0], "id": scope[1]},
        "has_data": any(not c["empty"] for c in data), "synthetic": any(c["any_synthetic"] for c in data),
        "refreshed_at": refreshed_at(), "charts": data,
    }


def refreshed_at():
    state = RefreshState.objects.filter(pk=1).values("last_finished_at").first()
    return state["last_finished_at"].isoformat() if state and state["last_finished_at"] else None


def scope_totals(*, metric: str, scope_kind: str, window: Window, include_synthetic: bool = True) -> dict[str, float]:
    """{scope id: sum of an additive metric over the window}: ranks Datanets, models and earners."""
    queryset = MetricFact.objects.filter(metric=metric, scope_kind=scope_kind, grain=Grain.DAY,
                                         day__gte=window.start, day__lte=window.end)
    if not include_synthetic:
        queryset = queryset.filter(synthetic=False)
    measured = measured_days(start=window.start, end=window.end) if include_synthetic else set()
    chosen: dict[tuple, float] = {}
    for day, scope_id, value, synthetic in queryset.order_by("-synthetic").values_list("day", "scope_id", "value",
                                                                                      "synthetic"):
        if synthetic and day in measured:
            continue
        chosen[(day, scope_id)] = value  # real after synthetic: real wins
    totals: dict[str, float] = defaultdict(float)
    for (_day, scope_id), value in chosen.items():
        totals[scope_id] += value
    return dict(totals)


def synthetic_scope_ids(*, metric: str, scope_kind: str, window: Window) -> set[str]:
    """Scopes whose total in the window includes generated days."""
    measured = measured_days(start=window.start, end=window.end)
    return set(MetricFact.objects.filter(metric=metric, scope_kind=scope_kind, synthetic=True, day__gte=window.start,
                                         day__lte=window.end).exclude(day__in=measured)
               .values_list("scope_id", flat=True).distinct())


def top_earners(*, window: Window, include_synthetic: bool = True, limit: int = 10) -> list[dict]:
    """Contributors who earned most in the window (OPEN, from settled answers)."""
    from accounts import selectors as accounts_selectors

    totals = scope_totals(metric="rewards.earned", scope_kind=ScopeKind.USER, window=window,
                          include_synthetic=include_synthetic)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]
    names = accounts_selectors.users_public_names(user_ids=[uid for uid, _ in ranked])
    synthetic = synthetic_scope_ids(metric="rewards.earned", scope_kind=ScopeKind.USER, window=window) \
        if include_synthetic else set()
    return [{"rank": n, "user_id": int(uid) if uid.isdigit() else None,
             "name": names.get(int(uid)) if uid.isdigit() else f"Synthetic contributor {uid.rsplit('-', 1)[-1]}",
             "earned": _round(total), "synthetic": uid in synthetic}
            for n, (uid, total) in enumerate(ranked, start=1)]


def retention(*, kind: str, include_synthetic: bool = True, weeks: int = RETENTION_WEEKS_SHOWN) -> dict:
    """The last `weeks` weekly cohorts: size and share active n weeks later, plus the size-weighted curve."""
    if kind not in CohortKind.values:
        raise InvalidWindow("kind", f"'{kind[:40]}' is not a cohort kind: use one of {', '.join(CohortKind.values)}.")
    queryset = CohortRetention.objects.filter(kind=kind)
    if not include_synthetic:
        queryset = queryset.filter(synthetic=False)
    latest = queryset.aggregate(latest=Max("cohort_week"))["latest"]
    groups: dict[tuple, dict] = {}
    if latest is not None:
        oldest = latest - timedelta(weeks=weeks - 1)
        for row in queryset.filter(cohort_week__gte=oldest):
            entry = groups.setdefault((row.cohort_week, row.synthetic), {"size": row.cohort_size, "active": {},
                                                                         "synthetic": row.synthetic})
            entry["active"][row.weeks_after] = row.active
    # A cohort measured for real replaces its synthetic stand-in whole (never mixed week by week).
    cohorts = {week: entry for (week, synthetic), entry in sorted(groups.items(), key=lambda kv: not kv[0][1])}
    rows, curve_active, curve_size = [], defaultdict(int), defaultdict(int)
    for week, entry in sorted(cohorts.items()):
        size = entry["size"]
        shares = [None] * weeks
        for n, active in entry["active"].items():
            if n < weeks:
                shares[n] = round(100 * active / size, 1) if size else None
                curve_active[n] += active
                curve_size[n] += size
        rows.append({"cohort_week": week.isoformat(), "size": size, "shares": shares, "synthetic": entry["synthetic"]})
    curve = [round(100 * curve_active[n] / curve_size[n], 1) if curve_size.get(n) else None for n in range(weeks)]
    return {"kind": kind, "label": CohortKind(kind).label, "weeks": list(range(weeks)), "cohorts": rows,
            "curve": curve, "empty": not rows, "synthetic": any(r["synthetic"] for r in rows)}


def epochs(*, include_synthetic: bool = True) -> list[dict]:
    queryset = EpochSummary.objects.all() if include_synthetic else EpochSummary.objects.filter(synthetic=False)
    return [{"number": e.number, "label": f"{'S' if e.synthetic else '#'}{e.number}", "state": e.state,
             "frozen_at": e.frozen_at.isoformat(), "closed_at": e.closed_at.isoformat() if e.closed_at else None,
             "accrued": _round(e.accrued), "funded": _round(e.funded), "claimed": _round(e.claimed),
             "recipients": e.recipients, "synthetic": e.synthetic}
            for e in queryset.order_by("frozen_at", "synthetic", "number")]


def synthetic_present() -> bool:
    return MetricFact.objects.filter(synthetic=True).exists()


# --- Pages and API: one dict per view, shared by both ----------------------------------------------------------

RANKED_LIMIT = 50


def datanets_ranked(*, user, window: Window, include_synthetic: bool = True) -> list[dict]:
    """The first RANKED_LIMIT Datanets this user may see, by rows submitted in the window (private ones only
    for their members)."""
    from django.urls import reverse

    from datanets import selectors as datanet_selectors

    visible = datanet_selectors.datanet_ids_visible_to(user=user)
    totals = scope_totals(metric="contrib.rows_submitted", scope_kind=ScopeKind.DATANET, window=window,
                          include_synthetic=include_synthetic)
    ranked = [{"slug": d["slug"], "name": d["name"], "total": _round(totals.get(str(pk), 0.0)),
               "url": reverse("insights:datanet", args=[d["slug"]])} for pk, d in visible.items()]
    return sorted(ranked, key=lambda r: (-r["total"], r["name"]))[:RANKED_LIMIT]


def models_ranked(*, user, window: Window, include_synthetic: bool = True) -> list[dict]:
    """The first RANKED_LIMIT model versions this user may see (deployed ones, and their own), by requests in
    the window."""
    from django.urls import reverse

    from models_registry import selectors as registry_selectors

    totals = scope_totals(metric="infer.requests", scope_kind=ScopeKind.MODEL, window=window,
                          include_synthetic=include_synthetic)
    versions = registry_selectors.model_versions_visible_to(user=user).values("slug", "name", "version_hash")
    ranked = [{"slug": v["slug"], "name": v["name"], "total": _round(totals.get(v["version_hash"], 0.0)),
               "url": reverse("insights:model", args=[v["slug"]])} for v in versions]
    return sorted(ranked, key=lambda r: (-r["total"], r["name"]))[:RANKED_LIMIT]


def overview(*, user, window: Window, include_synthetic: bool = True) -> dict:
    from .catalog import OVERVIEW_CHARTS

    data = dashboard(charts=OVERVIEW_CHARTS, window=window, include_synthetic=include_synthetic)
    data["datanets"] = datanets_ranked(user=user, window=window, include_synthetic=include_synthetic)
    data["models"] = models_ranked(user=user, window=window, include_synthetic=include_synthetic)
    return data


def datanet_dashboard(*, slug: str, user, window: Window, include_synthetic: bool = True) -> dict:
    """Raises Http404 for a Datanet the user may not see (private ones do not reveal they exist)."""
    from datanets import selectors as datanet_selectors

    from .catalog import DATANET_CHARTS

    datanet = datanet_selectors.datanet_get_visible(slug=slug, user=user)
    data = dashboard(charts=DATANET_CHARTS, window=window, scope_kind=ScopeKind.DATANET, scope_id=str(datanet.pk),
                     include_synthetic=include_synthetic)
    data["datanet"] = {"slug": datanet.slug, "name": datanet.name, "url": datanet.get_absolute_url()}
    return data


def model_dashboard(*, slug: str, user, window: Window, include_synthetic: bool = True) -> dict:
    """Raises Http404 for a model version the user may not see."""
    from models_registry import selectors as registry_selectors

    from .catalog import MODEL_VERSION_CHARTS

    version = registry_selectors.model_version_get_visible(slug=slug, user=user)
    data = dashboard(charts=MODEL_VERSION_CHARTS, window=window, scope_kind=ScopeKind.MODEL,
                     scope_id=version.version_hash, include_synthetic=include_synthetic)
    data["model"] = {"slug": version.slug, "name": version.name, "version_hash": version.version_hash,
                     "deployed": version.deployed, "url": version.get_absolute_url()}
    return data


def retention_chart(contributors: dict, api_users: dict) -> dict:
    """The two size-weighted retention curves as one chart (same shape as `dashboard`'s charts)."""
    weeks = contributors["weeks"]
    series = [{"key": kind["kind"], "label": label, "values": kind["curve"], "total": None, "total_kind": "overall"}
              for kind, label in ((contributors, "Contributors"), (api_users, "API users"))]
    empty = contributors["empty"] and api_users["empty"]
    synthetic = contributors["synthetic"] or api_users["synthetic"]
    return {"id": "retention_curve", "title": "Retention", "unit": "%", "kind": "line", "stacked": False,
            "description": "Share of a weekly cohort still active n weeks after its first week.",
            "section": "retention", "labels": [f"week {n}" for n in weeks], "series": series,
            "synthetic": [synthetic] * len(weeks), "empty": empty, "any_synthetic": synthetic,
            "summary": "Retention: no cohorts yet." if empty else
            "Retention: share of each weekly cohort active n weeks later; " + "; ".join(
                f"{s['label']} after 4 weeks {_number(s['values'][4], '%')}" for s in series
                if len(s["values"]) > 4) + "."}


def epochs_chart(rows: list[dict]) -> dict:
    series = [{"key": key, "label": label, "values": [r[key] for r in rows], "total": _round(sum(r[key] for r in rows)),
               "total_kind": "total"} for key, label in (("accrued", "Accrued"), ("claimed", "Claimed"))]
    empty = not rows
    return {"id": "epochs", "title": "OPEN accrued and claimed per epoch", "unit": "OPEN", "kind": "bar",
            "stacked": False, "section": "rewards",
            "description": "What each payout epoch froze for contributors and owners, and what was claimed on chain "
                           "before the next one.",
            "labels": [r["label"] for r in rows], "series": series, "synthetic": [r["synthetic"] for r in rows],
            "empty": empty, "any_synthetic": any(r["synthetic"] for r in rows),
            "summary": "Epochs: none closed yet." if empty else
            f"{len(rows)} epochs: accrued {_number(series[0]['total'], 'OPEN')}, claimed "
            f"{_number(series[1]['total'], 'OPEN')} in all."}


def format_value(value, unit: str) -> str:
    """A table cell: the number without its unit (the column header names it)."""
    if value is None:
        return "–"
    if unit == "%":
        return f"{value:.1f}"
    if unit == "OPEN":
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.1f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
