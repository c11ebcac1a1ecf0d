"""Prometheus metrics of the serving tier, labelled by adapter (= the model version's slug, which is
the adapter's name on the model server).

Request counters and latency are recorded by the web process as requests finish; the model server's
own counters (per-adapter requests, tiers, hit rates, queue depth) are read from its `/v1/stats`
when `/metrics` is scraped.

Several web processes (gunicorn workers): each worker counts only the requests it served, so a
scrape answered by one worker would see a fraction of the traffic. When `PROMETHEUS_MULTIPROC_DIR`
is set (the repository's `gunicorn.conf.py` sets and wipes it for multi-worker runs), prometheus-client
keeps every worker's values in files there and a scrape sums them (`MultiProcessCollector`). Without
it, one process's default registry is exposed.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("inference")

# prometheus-client picks its value storage when it is first imported, so the mode is fixed per process.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)  # each process writes its file there on first use

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
    """Gauges from the model server's `/v1/stats`, read at scrape time (a down server yields `up 0`)."""

    def collect(self):
        from django.conf import settings

        from .client import ModelServerClient, ModelServerError

        up = GaugeMetricFamily("lineage_model_server_up", "Whether the model server answered the scrape.")
        client = ModelServerClient(settings.INFERENCE_SERVER_URL, timeout=2.0, connect_timeout=1.0)
        try:
            stats = client.stats(timeout=2.0)
        except ModelServerError:
            up.add_metric([], 0)
            yield up
            return
        finally:
            client.close()
        up.add_metric([], 1)
        yield up
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
        for base, engine in (stats.get("bases") or {}).items():
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


_collector_registered = False


def register_collector() -> None:
    global _collector_registered
    if not _collector_registered:
        REGISTRY.register(ModelServerCollector())
        _collector_registered = True


def scrape_registry() -> CollectorRegistry:
    """The registry a scrape reads: all web processes' values in multiprocess mode, else this process's."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
        registry.register(ModelServerCollector())
        return registry
    register_collector()
    return REGISTRY

