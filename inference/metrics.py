"""Prometheus metrics of the serving tier, labelled by adapter (= the model version's slug, which is
the adapter's name on the model server).

Request counters and latency are recorded by the web process as requests finish; the model server's
own counters (per-adapter requests, tiers, hit rates, queue depth) are read from its `/v1/stats`
when `/metrics` is scraped (`ModelServerCollector`, registered from `InferenceConfig.ready`).

`/metrics` itself, the multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, every web worker's values summed)
and the platform-wide HTTP, Celery and broker metrics live in `lineage/observability.py`.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("inference")

REQUESTS = Counter("lineage_inference_requests", "Inference requests by model, endpoint and outcome.",
                   ["adapter", "endpoint", "status"])
LATENCY = Histogram("lineage_inference_latency_seconds", "Time to a complete answer.", ["adapter", "endpoint"],
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
TOKENS = Counter("lineage_inference_tokens", "Tokens in and out.", ["adapter", "direction"])
FEES = Counter("lineage_inference_fees_base_units", "OPEN base units charged.", ["adapter"])


def observe(record) -> None:
    adapter = record.adapter or record.model_slug or "unknown"
    REQUESTS.labels(adapter, record.endpoint, record.status).inc()
    if record.status == "succeeded":
        if record.latency_ms is not None:
            LATENCY.labels(adapter, record.endpoint).observe(record.latency_ms / 1e3)
        TOKENS.labels(adapter, "in").inc(record.tokens_in)
        TOKENS.labels(adapter, "out").inc(record.tokens_out)
        if record.fee:
            FEES.labels(adapter).inc(float(record.fee))


class ModelServerCollector:
    """Gauges from the model servers' `/v1/stats`, read at scrape time.

    `lineage_model_server_up` is 1 when every configured server answered (0 when any is down), and
    `lineage_model_server_instance_up{server}` says which; the per-base gauges are labelled by base, named
    `base @ host:port` when `INFERENCE_SERVER_URLS` lists several servers."""

    def collect(self):
        from .selectors import model_servers_stats

        servers = model_servers_stats(timeout=2.0)
        up = GaugeMetricFamily("lineage_model_server_up", "Whether every model server answered the scrape.")
        up.add_metric([], 1 if all(each["up"] for each in servers) else 0)
        yield up
        instance_up = GaugeMetricFamily("lineage_model_server_instance_up",
                                        "Whether this model server answered the scrape.", labels=["server"])
        for each in servers:
            instance_up.add_metric([each["url"]], 1 if each["up"] else 0)
        yield instance_up
        several = len(servers) > 1
        bases = {}
        for each in servers:
            where = each["url"].split("://", 1)[-1]
            for name, engine in ((each["stats"] or {}).get("bases") or {}).items():
                bases[f"{name} @ {where}" if several else name] = engine
        if not bases:
            return
        waiting = GaugeMetricFamily("lineage_model_server_queue_depth", "Queued requests.", labels=["base"])
        running = GaugeMetricFamily("lineage_model_server_running", "Rows in the running batch.", labels=["base"])
        hits = GaugeMetricFamily("lineage_model_server_cache_hits", "Adapter cache hits per tier.",
                                 labels=["base", "tier"])
        misses = GaugeMetricFamily("lineage_model_server_cache_misses", "Adapter cache misses per tier.",
                                   labels=["base", "tier"])
        adapter_requests = GaugeMetricFamily("lineage_model_server_adapter_requests",
                                             "Requests seen by the model server per adapter.", labels=["base", "adapter"])
        adapter_tier = GaugeMetricFamily("lineage_model_server_adapter_on_device",
                                         "1 when the adapter is resident in a device slot.", labels=["base", "adapter"])
        for base, engine in bases.items():
            waiting.add_metric([base], engine.get("waiting", 0))
            running.add_metric([base], engine.get("running", 0))
            cache = engine.get("cache", {})
            for tier in ("device", "host"):
                hits.add_metric([base, tier], cache.get(tier, {}).get("hits", 0))
                misses.add_metric([base, tier], cache.get(tier, {}).get("misses", 0))
            for name, info in cache.get("adapters", {}).items():
                adapter_requests.add_metric([base, name], info.get("requests", 0))
                adapter_tier.add_metric([base, name], 1 if info.get("tier") == "device" else 0)
        yield from (waiting, running, hits, misses, adapter_requests, adapter_tier)

