"""Figures of a bench/load.py run: what locust wrote when it quit (bench/load/locustfile.py), grouped into what the run is for (the
streams, the page views under that load next to idle, the web workers' memory) and printed."""

from __future__ import annotations

import os
import statistics

MB = 1024 * 1024
# Locust's names of the streams' measurements (bench/load/locustfile.py, StreamingChat).
STREAM_TIMINGS = {"time_to_first_byte_ms": "stream: first byte", "time_to_first_token_ms": "stream: first token",
                  "stream_ms": "stream: complete ([DONE])"}
# The public pages: the idle probe's paths and locust's names for the same pages.
PAGE_NAMES = {"/datanets/": "page /datanets/", "/datanets/{slug}/": "page /datanets/[slug]/",
              "/datanets/{slug}/rows/": "page /datanets/[slug]/rows/"}


def _percentiles(entry: dict | None) -> dict:
    entry = entry or {}
    return {"p50": entry.get("p50_ms"), "p95": entry.get("p95_ms"), "p99": entry.get("p99_ms"),
            "count": entry.get("requests", 0), "failures": entry.get("failures", 0)}


def build(*, args, web: dict, results: dict, idle: dict[str, list[float]], rss: dict[int, int],
          threads: dict[int, int], workers_booted: int) -> dict:
    endpoints, total, streams = results["endpoints"], results["total"], results["streams"]
    by_name = {e["endpoint"]: e for e in endpoints}
    stream_figures = {key: _percentiles(by_name.get(name)) for key, name in STREAM_TIMINGS.items()}
    complete = by_name.get(STREAM_TIMINGS["stream_ms"]) or {}
    pages = {}
    for path, name in PAGE_NAMES.items():
        load = _percentiles(by_name.get(name))
        samples = idle.get(path) or []
        pages[name] = {"idle_p50_ms": round(statistics.median(samples), 1) if samples else None,
                       "idle_max_ms": round(max(samples), 1) if samples else None,
                       "load_p50_ms": load["p50"], "load_p95_ms": load["p95"], "load_p99_ms": load["p99"],
                       "requests": load["count"], "failures": load["failures"]}
    return {
        "clients": args.clients, "users": args.users, "duration_s": args.duration, "max_tokens": args.max_tokens,
        "web": {**web, "workers_booted": workers_booted,
                "peak_rss_mb": sorted(round(v / MB) for v in rss.values()),
                "peak_threads": sorted(threads.values())},
        "streams": {**streams, **stream_figures, "completed": complete.get("requests", 0) - complete.get("failures", 0),
                    "failed": complete.get("failures", 0)},
        "page_views": pages,
        "requests": total.get("requests", 0), "errors": total.get("failures", 0), "rps": total.get("rps", 0),
        "endpoints": endpoints, "failures": results["failures"], "machine_cpus": os.cpu_count(),
    }


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def show(result: dict, log) -> None:
    web, streams = result["web"], result["streams"]
    log(f"\nweb: {web['worker_class']}, {web['workers']} workers x {web['threads']} threads "
        f"({web['workers_booted']} workers booted); peak RSS per worker {web['peak_rss_mb']} MB, "
        f"peak threads per worker {web['peak_threads']}")
    log(f"streams: {result['clients']} clients; {streams['completed']} completed, {streams['failed']} failed; "
        f"open at once: peak {streams.get('peak_open')}, mean {streams.get('mean_open')} "
        f"(all {result['clients']} open {100 * (streams.get('share_of_time_all_open') or 0):.0f}% of the time); "
        f"{streams.get('mean_completion_tokens')} tokens per stream on average")
    log(f"{'':<26} {'p50':>7} {'p95':>7} {'p99':>7}  (ms)")
    for key, label in (("time_to_first_byte_ms", "time to first byte"), ("time_to_first_token_ms", "time to first token"),
                       ("stream_ms", "stream, start to [DONE]")):
        figures = streams[key]
        log(f"{label:<26} {_ms(figures['p50']):>7} {_ms(figures['p95']):>7} {_ms(figures['p99']):>7}")
    log(f"\n{'page views':<30} {'idle p50':>8} {'idle max':>8} {'load p50':>8} {'p95':>7} {'p99':>7} {'req':>6} "
        f"{'err':>4}  (ms)")
    for name, page in result["page_views"].items():
        log(f"{name:<30} {_ms(page['idle_p50_ms']):>8} {_ms(page['idle_max_ms']):>8} {_ms(page['load_p50_ms']):>8} "
            f"{_ms(page['load_p95_ms']):>7} {_ms(page['load_p99_ms']):>7} {page['requests']:>6} {page['failures']:>4}")
    log(f"\n{'endpoint':<62} {'req':>6} {'err':>4} {'req/s':>6} {'p50':>6} {'p95':>6} {'p99':>6}  (ms)")
    for e in sorted(result["endpoints"], key=lambda e: -e["requests"]):
        log(f"{e['method'] + ' ' + e['endpoint']:<62.62} {e['requests']:>6} {e['failures']:>4} {e['rps']:>6.2f} "
            f"{e['p50_ms'] or 0:>6.0f} {e['p95_ms'] or 0:>6.0f} {e['p99_ms'] or 0:>6.0f}")
    log(f"{'all':<62} {result['requests']:>6} {result['errors']:>4} {result['rps']:>6.2f}")
    for failure in result["failures"]:
        log(f"  failure x{failure['occurrences']}: {failure['method']} {failure['endpoint']}: {failure['error']}")
