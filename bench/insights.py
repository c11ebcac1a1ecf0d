"""Dashboards benchmark: how long `/insights/` and its JSON take with a year of history.

What runs is the production path: a throwaway SQLite database (in a temporary `LINEAGE_VAR_DIR`; or the
database named by `DATABASE_URL` when set: give it a database of its own) is migrated, two public
Datanets are created, `lineage.demo.history.history_generate(days=365)` writes a year of summaries, a real
`summaries_refresh(since=None)` runs, and the page and the API are requested through Django's test
client (middleware, templates, JSON rendering included) for several ranges. Each figure is the median of
`--repeat` requests after one warm-up, with the chart cache warm (what a visitor after the first one sees
until the next refresh) and cleared (computed from the summary tables). Target: the year page under 500 ms. Nothing is asserted; timings on
a shared machine are noisy.

Usage: `python bench/insights.py [--quick] [--repeat N] [--json]`. `--quick` uses 90 days of history.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_YEAR_PAGE_MS = 500.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="90 days of history instead of 365")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="lineage-insights-bench-")
    os.environ.setdefault("LINEAGE_VAR_DIR", tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from accounts.services import demo_users_ensure
    from datanets import services as datanet_services
    from insights import services
    from lineage.demo.history import history_generate

    call_command("migrate", verbosity=0)
    owner = demo_users_ensure().by_role["owner"]
    for name in ("Support tickets", "Instructions"):
        datanet_services.datanet_create(owner=owner, name=name, task_type="text-classification",
                                        label_set=["billing", "shipping"])
    days = 90 if args.quick else 365
    started = time.perf_counter()
    history = history_generate(days=days, seed=0)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    services.summaries_refresh(since=None, sample_serving=False)
    refresh_s = time.perf_counter() - started

    client = Client()
    cases = {
        "page_90d": "/insights/?range=90d",
        "page_365d_weekly": "/insights/?range=365d",
        "page_365d_daily": "/insights/?range=365d&bucket=day",
        "page_htmx_365d": ("/insights/?range=365d", {"HTTP_HX_REQUEST": "true"}),
        "api_365d_daily": "/api/v1/insights/?range=365d&bucket=day",
        "api_all": "/api/v1/insights/?range=all",
        "datanet_365d": None,
    }
    from datanets.models import Datanet

    cases["datanet_365d"] = f"/insights/datanets/{Datanet.objects.order_by('pk').first().slug}/?range=365d"
    results = {}
    for name, case in cases.items():
        url, headers = case if isinstance(case, tuple) else (case, {})
        response = client.get(url, **headers)  # warm-up
        assert response.status_code == 200, (url, response.status_code)
        timings, cold = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(url, **headers)
            timings.append((time.perf_counter() - started) * 1000)
            cache.clear()  # the next request computes the charts from the summary tables again
            started = time.perf_counter()
            client.get(url, **headers)
            cold.append((time.perf_counter() - started) * 1000)
        results[name] = {"median_ms": round(statistics.median(timings), 1),
                         "uncached_median_ms": round(statistics.median(cold), 1), "bytes": len(response.content)}

    figures = {
        "history_days": days, "facts": history.facts, "generate_s": round(generate_s, 2),
        "refresh_all_s": round(refresh_s, 3), "requests": results,
        "target_year_page_ms": TARGET_YEAR_PAGE_MS, "database": django.db.connection.vendor,
    }
    print(f"history: {days} days, {history.facts} facts, generated in {generate_s:.2f} s; full refresh {refresh_s:.3f} s")
    for name, figure in results.items():
        print(f"{name:>20}: {figure['median_ms']:8.1f} ms median, {figure['uncached_median_ms']:8.1f} ms with the chart "
              f"cache cleared, over {args.repeat} ({figure['bytes'] / 1024:.0f} KiB)")
    print(f"target: year page < {TARGET_YEAR_PAGE_MS:.0f} ms (noisy on a shared machine; not asserted)")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
