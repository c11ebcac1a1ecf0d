"""The public dashboards: `/insights/` and its per-Datanet and per-model drill-downs.

Pages read the same dicts as the API (`insights.selectors`). The range form works without JavaScript
(a plain GET); with htmx it swaps only the dashboard fragment and pushes the URL. Every chart is drawn
by Chart.js from the JSON embedded beside it, and has a table with the same numbers.
"""

from django.urls import reverse
from django.utils.dateparse import parse_datetime

from lineage.htmx import HtmxHttpRequest, render_page_or_partial

from . import selectors
from .catalog import BUCKETS, RANGE_CHOICES, SECTIONS

RANGE_LABELS = {"7d": "7 days", "30d": "30 days", "90d": "90 days", "180d": "6 months", "365d": "1 year",
                "all": "All time"}


def _with_tables(charts: list[dict], bucket: str) -> list[dict]:
    """Adds `rows` (formatted cells per bucket) for each chart's table alternative."""
    for chart in charts:
        chart["script_id"] = f"chart-data-{chart['id']}"
        chart["chart_json"] = {key: chart[key] for key in ("labels", "series", "synthetic", "kind", "stacked", "unit")}
        chart["rows"] = [
            {"label": label, "synthetic": synthetic,
             "cells": [selectors.format_value(s["values"][i], chart["unit"]) for s in chart["series"]]}
            for i, (label, synthetic) in enumerate(zip(chart["labels"], chart["synthetic"], strict=True))
        ]
        chart["bucket"] = bucket
    return charts


def _params(request) -> tuple:
    """(window or None, include_synthetic, error message or "")."""
    synthetic = (request.GET.get("synthetic") or "include").strip().lower()
    if synthetic not in ("include", "exclude"):
        return None, True, f"'{synthetic[:40]}' is not a choice for synthetic history: use include or exclude."
    try:
        window = selectors.window_parse(range_value=request.GET.get("range"), bucket=request.GET.get("bucket"))
    except selectors.InvalidWindow as exc:
        return None, synthetic == "include", exc.message
    return window, synthetic == "include", ""


def _render(request: HtmxHttpRequest, template: str, context: dict, *, status: int = 200):
    # A refused range re-renders the whole page, form and message included, even for htmx.
    partial = None if context.get("error") else "dashboard"
    return render_page_or_partial(request, template, context, partial=partial, status=status)


def _base_context(request, window, include_synthetic, error) -> dict:
    return {
        "window": window, "include_synthetic": include_synthetic, "error": error,
        "range_choices": [(value, RANGE_LABELS[value]) for value in RANGE_CHOICES], "buckets": BUCKETS,
        "selected_range": window.range if window else "",
        # "" = automatic (days up to 120 days, weeks beyond), so a longer range switches to weeks by itself.
        "selected_bucket": (request.GET.get("bucket") or "").strip().lower() if window else "",
        "custom_range": bool(window) and window.range not in RANGE_CHOICES,
        "refreshed_at": parse_datetime(selectors.refreshed_at() or ""),
    }


def _sections(charts: list[dict]) -> list[dict]:
    by_section = {}
    for chart in charts:
        by_section.setdefault(chart["section"], []).append(chart)
    return [{"id": key, "title": title, "charts": by_section[key]} for key, title in SECTIONS if key in by_section]


def index(request):
    window, include_synthetic, error = _params(request)
    context = _base_context(request, window, include_synthetic, error)
    if error:
        return _render(request, "insights/index.html", context, status=400)
    data = selectors.overview(user=request.user, window=window, include_synthetic=include_synthetic)
    contributors = selectors.retention(kind="contributors", include_synthetic=include_synthetic)
    api_users = selectors.retention(kind="api_users", include_synthetic=include_synthetic)
    epochs = selectors.epochs(include_synthetic=include_synthetic)
    extra_charts = (_with_tables([selectors.retention_chart(contributors, api_users)], "weeks after")
                    + _with_tables([selectors.epochs_chart(epochs)], "epoch"))
    context.update({
        "data": data, "sections": _sections(_with_tables(data["charts"], window.bucket)),
        "kpis": _kpis(data["charts"]), "retention": [contributors, api_users],
        "retention_chart": extra_charts[0], "epochs_chart": extra_charts[1], "epochs": epochs,
        "top_earners": selectors.top_earners(window=window, include_synthetic=include_synthetic),
        "synthetic_present": data["synthetic"] or any(r["synthetic"] for r in (contributors, api_users))
        or any(e["synthetic"] for e in epochs),
    })
    return _render(request, "insights/index.html", context)


def _kpis(charts: list[dict]) -> list[dict]:
    """Headline figures for the window: chosen series' totals."""
    wanted = (("contribution_velocity", "rows_submitted", "Rows submitted", ""),
              ("contribution_velocity", "rows_accepted", "Rows accepted", ""),
              ("contributors", "new_contributors", "New contributors", ""),
              ("inference_requests", "requests", "Inference requests", ""),
              ("inference_fees", "fees", "Fees", "OPEN"),
              ("contributor_share", "contributor_share", "Fees to contributors", "%"))
    series = {(c["id"], s["key"]): (s, c["unit"]) for c in charts for s in c["series"]}
    kpis = []
    for chart_id, key, label, suffix in wanted:
        found, unit = series.get((chart_id, key), (None, ""))
        kpis.append({"label": label, "value": selectors.format_value(found["total"] if found else None, unit),
                     "unit": suffix})
    return kpis


def datanet(request, slug):
    return _drilldown(request, kind="datanet", slug=slug, dashboard=selectors.datanet_dashboard)


def model(request, slug):
    return _drilldown(request, kind="model", slug=slug, dashboard=selectors.model_dashboard)


def _drilldown(request, *, kind: str, slug: str, dashboard):
    """One Datanet's or one model's dashboard: `dashboard` is its selector, `kind` names the subject."""
    window, include_synthetic, error = _params(request)
    context = _base_context(request, window, include_synthetic, error)
    context.update({"kind": kind, "api_url": reverse(f"insights-api-{kind}", args=[slug])})
    if error:
        return _render(request, "insights/drilldown.html", context, status=400)
    data = dashboard(slug=slug, user=request.user, window=window, include_synthetic=include_synthetic)
    context.update({"data": data, "subject": data[kind],
                    "sections": _sections(_with_tables(data["charts"], window.bucket))})
    return _render(request, "insights/drilldown.html", context)
