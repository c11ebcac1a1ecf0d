"""Reads for OpenLoRA serving."""

from django.conf import settings

from models_registry import selectors as registry_selectors

from .models import InferenceRecord, InferenceStatus


def inference_records_for(*, user):
    return InferenceRecord.objects.filter(user=user).order_by("-created_at")


def inference_record_get(*, inference_id) -> InferenceRecord | None:
    return InferenceRecord.objects.filter(pk=inference_id).first()


def receipt_awaited(*, receipt_id: str) -> InferenceRecord | None:
    """The answered inference whose receipt id was reserved and whose queued receipt is not stored yet."""
    if not receipt_id:
        return None
    return InferenceRecord.objects.filter(receipt_id=str(receipt_id), finished_at__isnull=True,
                                          status=InferenceStatus.SUCCEEDED).first()


def deployed_models():
    return registry_selectors.deployed_model_versions().order_by("name")


def deployed_model(*, slug: str):
    """The deployed model version called `slug`, or None (undeployed versions are not served)."""
    return registry_selectors.deployed_model_versions().filter(slug=slug).first()


def model_server_stats() -> dict | None:
    """The model server's `/v1/stats` (several servers: their bases side by side, named `base @ host:port`),
    or None when none answers."""
    from .client import ModelServerClient, ModelServerError

    client = ModelServerClient(settings.INFERENCE_SERVER_URL, timeout=3.0, connect_timeout=1.0)
    try:
        return client.stats()
    except ModelServerError:
        return None
    finally:
        client.close()


def model_servers_stats(*, timeout: float = 3.0) -> list[dict]:
    """Each configured model server's `/v1/stats`, asked at once (a slow server costs one `timeout`, not
    one per server): `[{"url", "up", "error", "stats"}]` in `INFERENCE_SERVER_URLS` order."""
    from concurrent.futures import ThreadPoolExecutor

    from .client import ModelServerError, ServerConnection, configured_token, split_urls

    def ask(url: str) -> dict:
        connection = ServerConnection(url, token=configured_token(), timeout=timeout, connect_timeout=1.0)
        try:
            return {"url": url, "up": True, "error": None, "stats": connection.stats(timeout=timeout)}
        except ModelServerError as exc:
            return {"url": url, "up": False, "error": exc.message, "stats": None}
        finally:
            connection.close()

    urls = split_urls(settings.INFERENCE_SERVER_URL)
    if len(urls) == 1:
        return [ask(urls[0])]
    with ThreadPoolExecutor(max_workers=min(len(urls), 8)) as pool:
        return list(pool.map(ask, urls))


def operator_overview() -> dict:
    """Per model server: up or down (and why), and per base on it: loaded adapters by tier, hit rates,
    queue depth, and per-adapter request counts. `up`: whether any server answered; `bases`: every
    answering server's bases in one list (each naming its `server`)."""
    servers = []
    for each in model_servers_stats():
        bases = [_base_overview(name, engine, each["url"]) for name, engine in
                 ((each["stats"] or {}).get("bases") or {}).items()]
        servers.append({"url": each["url"], "up": each["up"], "error": each["error"], "bases": bases})
    return {"up": any(s["up"] for s in servers), "servers": servers,
            "bases": [base for server in servers for base in server["bases"]]}


def _base_overview(name: str, engine: dict, server: str) -> dict:
    cache = engine.get("cache", {})
    device, host = cache.get("device", {}), cache.get("host", {})
    tiers: dict[str, list] = {}
    adapters = sorted(cache.get("adapters", {}).values(), key=lambda a: (-a.get("requests", 0), a["name"]))
    for adapter in adapters:
        tiers.setdefault(adapter["tier"], []).append(adapter["name"])
    return {
        "name": name, "server": server, "task": engine.get("task"), "path": engine.get("path"),
        "waiting": engine.get("waiting", 0), "running": engine.get("running", 0),
        "completed": engine.get("completed", 0), "failed": engine.get("failed", 0),
        "device": device, "host": host, "disk": cache.get("disk", {}),
        "device_hit_rate": _rate(device), "host_hit_rate": _rate(host),
        "tiers": tiers, "adapters": adapters,
    }


def _rate(counters: dict) -> float | None:
    total = counters.get("hits", 0) + counters.get("misses", 0)
    return None if not total else counters.get("hits", 0) / total


# --- Reads for insights' daily summaries: plain rows grouped by UTC day, for [start, end) datetimes.

def inference_daily_totals(*, start, end) -> list[dict]:
    """Per (day, model version hash, status): requests and tokens of requests made in [start, end)."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    return list(
        InferenceRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at")).values("day", "model_version_hash", "status")
        .annotate(n=Count("pk"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out")).order_by()
    )


def inference_latencies(*, start, end):
    """(created_at, model version hash, latency ms) of answered requests made in [start, end), streamed."""
    from .models import InferenceStatus

    return (InferenceRecord.objects.filter(created_at__gte=start, created_at__lt=end, status=InferenceStatus.SUCCEEDED,
                                           latency_ms__isnull=False)
            .order_by().values_list("created_at", "model_version_hash", "latency_ms").iterator(chunk_size=5000))
