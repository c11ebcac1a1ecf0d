"""The model server's adapter-cache counters: sampled into `ServingSample` rows (`serving_sample_take`) and
turned into increases between samples (`counter_increases`), which the summaries add up per day."""

from __future__ import annotations

from django.utils import timezone

from inference import selectors as inference_selectors

from ..models import ServingSample


def serving_sample_take(stats: dict | None = None) -> int:
    """Record the model server's cumulative adapter-cache counters (one row per base). Returns how many
    bases were sampled; 0 when the model server does not answer."""
    stats = inference_selectors.model_server_stats() if stats is None else stats
    if not stats:
        return 0
    now, rows = timezone.now(), []
    for base, engine in (stats.get("bases") or {}).items():
        cache = engine.get("cache") or {}
        device, host = cache.get("device") or {}, cache.get("host") or {}
        rows.append(ServingSample(taken_at=now, base=str(base)[:120], device_hits=device.get("hits", 0),
                                  device_misses=device.get("misses", 0), host_hits=host.get("hits", 0),
                                  host_misses=host.get("misses", 0)))
    ServingSample.objects.bulk_create(rows)
    return len(rows)


def counter_increases(samples) -> list[tuple]:
    """[(time, hits increase, misses increase)] between consecutive samples of one base, oldest first.
    A counter lower than the one before means the server restarted: its new value is the increase."""
    increases, previous = [], None
    for sample in samples:
        if previous is not None:
            hits = sample.device_hits - previous.device_hits
            misses = sample.device_misses - previous.device_misses
            if hits < 0 or misses < 0:
                hits, misses = sample.device_hits, sample.device_misses
            increases.append((sample.taken_at, hits, misses))
        previous = sample
    return increases
