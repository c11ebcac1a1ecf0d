"""Serving (the model servers and the web tier's client of them, answer limits, streaming) and insights (the
dashboards' refreshes, `/metrics`)."""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .environment import VAR_DIR, env, secret
from .queues import CELERY_BEAT_SCHEDULE

# --- Inference
# The model server (`manage.py serve_models`) owns the models and the GPU; the web tier proxies to it.
INFERENCE_SERVER_URL = env.str("INFERENCE_SERVER_URL", default="http://127.0.0.1:8100")
# Several model servers: INFERENCE_SERVER_URLS="http://gpu-a:8100,http://gpu-b:8100"; a single
# INFERENCE_SERVER_URL is the one-element list. The web tier's client reads INFERENCE_SERVER_URL, which
# carries the list comma-joined, and routes each request to a healthy server holding its adapter.
INFERENCE_SERVER_URLS = env.list("INFERENCE_SERVER_URLS", default=[]) or [
    url.strip() for url in INFERENCE_SERVER_URL.split(",") if url.strip()]
INFERENCE_SERVER_URL = ",".join(INFERENCE_SERVER_URLS)
# Dense and hybrid searches embed their query with the bundled MiniLM: on the model servers (their
# POST /v1/embeddings; web processes then never load torch) or, in this process, as `make run` does. In this
# process by default only when no model server is configured (neither variable above set).
RETRIEVAL_EMBED_IN_PROCESS = env.bool("RETRIEVAL_EMBED_IN_PROCESS", default=not (
    os.environ.get("INFERENCE_SERVER_URLS", "").strip() or os.environ.get("INFERENCE_SERVER_URL", "").strip()))
RETRIEVAL_EMBED_TIMEOUT_S = env.float("RETRIEVAL_EMBED_TIMEOUT_S", default=30.0)  # web -> model server, one query
# The bearer token shared by the web tier and every model server (they refuse requests without it). Empty:
# a model server listens on loopback only.
INFERENCE_SERVER_TOKEN = secret("INFERENCE_SERVER_TOKEN", default="")
# Where a model server loads bases and adapters from (by id, never by a caller's path); serve_models
# publishes the deployed versions' files into it.
INFERENCE_MODEL_ROOT = Path(env.str("INFERENCE_MODEL_ROOT", default=str(VAR_DIR / "serving")))
# The model root is kept under this size by removing the least recently used adapters no server holds
# (after each load, and `manage.py inference_prune_model_root`); 0 = no bound.
INFERENCE_MODEL_ROOT_MAX_BYTES = env.int("INFERENCE_MODEL_ROOT_MAX_BYTES", default=20 * 2**30)
INFERENCE_BASE_REPLICAS = env.int("INFERENCE_BASE_REPLICAS", default=0)  # servers per base (serve_models --no-server); 0 = all
INFERENCE_SERVER_REQUEST_TIMEOUT_S = env.float("INFERENCE_SERVER_REQUEST_TIMEOUT_S", default=300.0)  # per request, server side
INFERENCE_SERVER_KEEPALIVE_S = env.float("INFERENCE_SERVER_KEEPALIVE_S", default=5.0)  # idle connection kept open
INFERENCE_SERVER_GRACE_S = env.float("INFERENCE_SERVER_GRACE_S", default=30.0)  # running answers finish on shutdown
INFERENCE_SLOTS = env.int("INFERENCE_SLOTS", default=8)  # adapters resident on device per base model
INFERENCE_MAX_RANK = env.int("INFERENCE_MAX_RANK", default=16)
INFERENCE_MAX_BATCH_ROWS = env.int("INFERENCE_MAX_BATCH_ROWS", default=32)
INFERENCE_NUM_LABELS = env.int("INFERENCE_NUM_LABELS", default=16)  # shared classifier head width (padded)
INFERENCE_DEVICE = env.str("INFERENCE_DEVICE", default="")  # empty: cuda when available, else cpu
INFERENCE_THREADS = env.int("INFERENCE_THREADS", default=0)  # torch CPU threads in the model server; 0 = torch's
INFERENCE_POLL_S = env.float("INFERENCE_POLL_S", default=3.0)  # how often serve_models re-reads deployments
INFERENCE_TIMEOUT_S = env.float("INFERENCE_TIMEOUT_S", default=120.0)  # web -> model server read timeout
# A streamed answer's total time in the web tier. The read timeout above bounds each wait only, so a server that
# keeps a stream alive (keep-alive comments, a token now and then) would hold a web thread forever. Past this the
# stream ends with an `upstream_error` event (`model_server_timeout`) and `[DONE]`, recorded failed and uncharged.
# Longer than INFERENCE_SERVER_REQUEST_TIMEOUT_S, so a Lineage model server's own deadline normally answers first.
try:
    INFERENCE_STREAM_MAX_S = env.float("INFERENCE_STREAM_MAX_S", default=360.0)
except ValueError:
    INFERENCE_STREAM_MAX_S = -1.0
if not 0 < INFERENCE_STREAM_MAX_S < float("inf"):
    raise ImproperlyConfigured(f"INFERENCE_STREAM_MAX_S={os.environ.get('INFERENCE_STREAM_MAX_S')!r} is not a "
                               "positive number of seconds: set it to how long one streamed answer may last, e.g. "
                               "360 (or unset it for that default).")
INFERENCE_MAX_PROMPT_CHARS = env.int("INFERENCE_MAX_PROMPT_CHARS", default=32_000)
INFERENCE_MAX_TOKENS_DEFAULT = env.int("INFERENCE_MAX_TOKENS_DEFAULT", default=64)
INFERENCE_MAX_TOKENS_LIMIT = env.int("INFERENCE_MAX_TOKENS_LIMIT", default=1024)
INFERENCE_RECEIPTS_ASYNC = env.bool("INFERENCE_RECEIPTS_ASYNC", default=True)  # queue receipt + fee (attribution queue); 0 = in the request

# --- Insights
# The dashboards read summary tables that beat refreshes every INSIGHTS_REFRESH_EVERY_S for the last
# INSIGHTS_REFRESH_DAYS days (a full rebuild: `insights.services.summaries_refresh(since=None)`).
INSIGHTS_REFRESH_EVERY_S = env.int("INSIGHTS_REFRESH_EVERY_S", default=300)
INSIGHTS_REFRESH_DAYS = env.int("INSIGHTS_REFRESH_DAYS", default=2)
INSIGHTS_COHORT_WEEKS = env.int("INSIGHTS_COHORT_WEEKS", default=12)  # retention cohorts kept
INSIGHTS_API_CALLS_FLUSH_S = env.float("INSIGHTS_API_CALLS_FLUSH_S", default=10.0)  # API-call counters per process
INSIGHTS_CACHE_S = env.int("INSIGHTS_CACHE_S", default=60)  # chart data per range; keyed by the last refresh too
# `/metrics` answers `Authorization: Bearer <METRICS_TOKEN>` (the Prometheus scraper) and staff sessions; anyone
# only under DEBUG with no token set.
METRICS_TOKEN = secret("METRICS_TOKEN", default="")
CELERY_BEAT_SCHEDULE["insights-summaries-refresh"] = {
    "task": "insights.tasks.summaries_refresh_recent",
    "schedule": timedelta(seconds=INSIGHTS_REFRESH_EVERY_S),
    "options": {"expires": INSIGHTS_REFRESH_EVERY_S},  # a refresh missed while workers are down is not worth queuing
}
