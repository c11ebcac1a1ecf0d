"""Platform-wide Prometheus metrics and the `/metrics` endpoint, in one place.

What lives here (every process records these, whatever app it serves):

- `lineage_http_requests_total` and `lineage_http_request_duration_seconds`, by method, route pattern
  (`api/v1/datanets/<slug:slug>/`, never the raw path, so label values stay bounded) and status, recorded by
  `RequestMetricsMiddleware`;
- `lineage_celery_task_duration_seconds` and `lineage_celery_tasks_total`, by task and final state, from
  Celery's task signals in whichever process runs the task (`connect_task_signals`, from `LineageConfig.ready`);
- `lineage_celery_queue_depth` per queue and `lineage_broker_up`, asked of the broker at scrape time;
- `metrics_allowed` and `metrics_view`: the `/metrics` exposition and who may read it.

An app adds its own scrape-time collectors with `register_scrape_collector` from its `AppConfig.ready`
(the serving tier's model-server gauges: `inference.apps`); its own counters (`inference.metrics`) are
ordinary prometheus-client metrics and reach the scrape through the registry. This module imports no app,
so no app imports another to be scraped.

Several processes (gunicorn workers, Celery workers): counters and histograms live in the process that
records them. When `PROMETHEUS_MULTIPROC_DIR` is set (the repository's `gunicorn.conf.py` sets and wipes it
for multi-worker runs), prometheus-client keeps every process's values in files there and a scrape sums
them (`MultiProcessCollector`); without it one process's default registry is exposed. The scrape-time
collectors need no sharing.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("lineage.observability")

# prometheus-client picks its value storage when it is first imported, so the mode is fixed per process.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)  # each process writes its file there on first use

HTTP_REQUESTS = Counter("lineage_http_requests", "HTTP requests by method, route pattern and status.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("lineage_http_request_duration_seconds", "Time to produce a response (streamed bodies: "
                         "until the first byte).", ["method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
TASK_DURATION = Histogram("lineage_celery_task_duration_seconds", "Celery task run time by task and final state.",
                          ["task", "state"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 7200))
TASKS = Counter("lineage_celery_tasks", "Celery tasks finished, by task and final state.", ["task", "state"])

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


# --- HTTP requests ------------------------------------------------------------------------------------------

def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return "/" + (match.route or match.view_name or "")


class RequestMetricsMiddleware:
    """Counts and times every request by its URL pattern (first in `MIDDLEWARE`, so it times all below it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            method = request.method if request.method in METHODS else "other"
            route = _route(request)
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        except Exception:  # noqa: BLE001 - metrics must never break a response
            logger.exception("could not record request metrics")
        return response


# --- Celery task durations ----------------------------------------------------------------------------------

_task_started: dict[str, float] = {}
_task_lock = threading.Lock()


def _on_task_prerun(sender=None, task_id=None, **kwargs) -> None:
    with _task_lock:
        _task_started[task_id] = time.perf_counter()


def _on_task_postrun(sender=None, task_id=None, state=None, **kwargs) -> None:
    with _task_lock:
        started = _task_started.pop(task_id, None)
    name = getattr(sender, "name", None) or "unknown"
    state = state or "UNKNOWN"
    TASKS.labels(name, state).inc()
    if started is not None:
        TASK_DURATION.labels(name, state).observe(time.perf_counter() - started)


def connect_task_signals() -> None:
    from celery import signals

    signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="lineage.observability.task_prerun")
    signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="lineage.observability.task_postrun")


# --- Broker queue depth -------------------------------------------------------------------------------------

class BrokerQueueCollector:
    """`lineage_celery_queue_depth{queue}`: messages waiting in each Celery queue, asked of the broker at
    scrape time with short timeouts; `lineage_broker_up` 0 when it cannot be reached."""

    timeout_s = 2.0

    def collect(self):
        from django.conf import settings

        up = GaugeMetricFamily("lineage_broker_up", "Whether the Celery broker answered the scrape.")
        depth = GaugeMetricFamily("lineage_celery_queue_depth", "Messages waiting in a Celery queue.",
                                  labels=["queue"])
        try:
            for queue, count in queue_depths(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                                             [q.name for q in settings.CELERY_TASK_QUEUES],
                                             timeout=self.timeout_s).items():
                if count is not None:
                    depth.add_metric([queue], count)
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape reports a broker that is down, it does not fail
            logger.warning("broker queue depth unavailable: %s", exc)
            up.add_metric([], 0)
        yield up
        yield depth


VIRTUAL_TRANSPORTS = frozenset({"redis", "filesystem", "sqlalchemy", "memory"})


def queue_depths(broker_url: str, transport_options: dict, queues, *, timeout: float = 2.0) -> dict:
    """{queue: waiting messages, or None when the broker does not know the queue yet}."""
    from kombu import Connection

    depths = {}
    with Connection(broker_url, transport_options=dict(transport_options or {}), connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        for queue in queues:
            channel = conn.channel()
            try:
                depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except Exception:  # noqa: BLE001 - AMQP answers an unknown queue with a channel error
                # Virtual transports (Redis, filesystem, SQL) deliver only to declared queues, so a queue
                # nobody declared yet holds no messages; an AMQP broker's unknown queue stays unknown.
                depths[queue] = 0 if conn.transport.driver_type in VIRTUAL_TRANSPORTS else None
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - the channel may already be closed by the error
                    pass
    return depths


# --- The scrape ---------------------------------------------------------------------------------------------

# Factories of the scrape-time collectors, by name, in the order they are exposed: the apps' own (registered
# from their `ready`), then the platform's broker collector. Each registry gets each of them once.
_app_collectors: list[tuple[str, Callable[[], object]]] = []
_registered: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # registry -> names registered on it
_registered_lock = threading.Lock()


def register_scrape_collector(name: str, factory: Callable[[], object]) -> None:
    """Expose `factory()`'s collector (an object with `collect()`, run at scrape time) on `/metrics`. Call
    from an `AppConfig.ready`; registering the same name again is ignored (ready may run twice in tests)."""
    with _registered_lock:
        if all(existing != name for existing, _ in _app_collectors):
            _app_collectors.append((name, factory))


def _register_collectors(registry) -> None:
    with _registered_lock:
        done = _registered.setdefault(registry, set())
        for name, factory in [*_app_collectors, ("lineage.broker", BrokerQueueCollector)]:
            if name not in done:
                registry.register(factory())
                done.add(name)


def scrape_registry() -> CollectorRegistry:
    """The registry a scrape reads, with the scrape-time collectors: all processes' values in multiprocess
    mode (a registry made per scrape), else this process's default registry."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    else:
        registry = REGISTRY
    _register_collectors(registry)
    return registry


def metrics_allowed(request) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>` (the scraper) or a staff session; anyone only under DEBUG
    when no token is configured. A wrong token is refused, whatever the session."""
    from django.conf import settings

    token = settings.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and presented.strip():
        return secrets.compare_digest(presented.strip().encode(), token.encode())
    if request.user.is_authenticated and request.user.is_staff:
        return True
    return settings.DEBUG and not token


def metrics_view(request):
    """`/metrics`: the Prometheus exposition of every metric above and the apps' (summed over processes in
    multiprocess mode). Not public: see `metrics_allowed`."""
    from django.http import HttpResponse, HttpResponseForbidden
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not metrics_allowed(request):
        return HttpResponseForbidden("Forbidden: /metrics needs the metrics bearer token or a staff session.\n",
                                     content_type="text/plain")
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
