"""Adapter cache tiers (load, evict, pin, lock, unload, integrity) and fair scheduling."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from inference.engine import (
    AdapterIntegrityError,
    AdapterNotFoundError,
    Admission,
    EngineCapacityError,
    ServingEngine,
    select_admissions,
)
from inference.engine.testing import build_tiny_bert_classifier, save_random_adapter

torch.set_num_threads(2)
NUM_ADAPTERS = 6


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    base_dir = build_tiny_bert_classifier(root / "base")
    base = AutoModelForSequenceClassification.from_pretrained(base_dir)
    adapters = {}
    for i in range(NUM_ADAPTERS):
        path = root / f"adapter{i}"
        sha = save_random_adapter(base, path, rank=2 + i % 3, target_modules=["query", "value"],
                                  modules_to_save=["classifier"], seed=100 + i)
        adapters[f"a{i}"] = (path, sha)
    return base_dir, adapters


def _engine(artifacts, num_slots=2, **config):
    base_dir, adapters = artifacts
    engine = ServingEngine.from_pretrained(base_dir, "classification", num_slots=num_slots, max_rank=4, **config)
    for name, (path, sha) in adapters.items():
        engine.load_adapter(name, path, sha)
    return engine


def test_lru_eviction_and_tier_counters(artifacts):
    engine = _engine(artifacts)
    cache = engine.cache
    assert cache.info("a0").tier == "host"
    slot0 = cache.try_acquire("a0")
    slot1 = cache.try_acquire("a1")
    assert cache.try_acquire("a2") is None  # both slots locked by running rows: nothing evictable
    cache.release(slot0)
    cache.release(slot1)
    assert cache.try_acquire("a1") == slot1  # device hit
    cache.release(slot1)
    slot2 = cache.try_acquire("a2")  # evicts a0, the least recently used
    cache.release(slot2)
    assert slot2 == slot0
    assert cache.info("a0").tier == "host" and cache.info("a2").tier == "device"
    stats = cache.stats()
    assert stats["device"]["hits"] == 1 and stats["device"]["misses"] == 3
    assert stats["host"]["hits"] == 3 and stats["disk"]["loads"] == NUM_ADAPTERS
    assert stats["device"]["locked_slots"] == 0
    info = cache.info("a2")
    assert info.device_bytes == info.raw_bytes  # pages sized by rank: no padding overhead


def test_pinned_adapters_are_never_evicted(artifacts):
    engine = _engine(artifacts)
    cache = engine.cache
    engine.pin_adapter("a3")
    engine.pin_adapter("a4")
    with pytest.raises(EngineCapacityError):
        engine.pin_adapter("a5")
    assert cache.try_acquire("a5") is None  # all slots pinned
    engine.pin_adapter("a4", pinned=False)
    slot = cache.try_acquire("a5")
    cache.release(slot)
    assert cache.info("a3").tier == "device" and cache.info("a4").tier == "host"
    assert cache.info("a3").pinned


def test_batch_needing_more_adapters_than_slots_is_split_across_steps(artifacts):
    engine = _engine(artifacts, num_slots=2)
    names = [f"a{i}" for i in range(NUM_ADAPTERS)]
    futures = [engine.submit_classify("the quick brown fox", name) for name in names]
    engine.step()
    assert sum(f.done() for f in futures) == 2  # two slots: two adapters per step
    results = engine.classify(["hello world"] * 2, adapter="a0")  # drives the remaining steps too
    assert all(f.done() for f in futures) and engine.counters["steps"] >= NUM_ADAPTERS // 2
    reference = {}
    for name in names:  # each adapter alone gives the same answer as in the split batch
        reference[name] = engine.classify("the quick brown fox", adapter=name)[0]
    for name, future in zip(names, futures, strict=True):
        assert future.result().probabilities == pytest.approx(reference[name].probabilities, abs=1e-6)
    assert len(results) == 2
    assert engine.cache.stats()["device"]["locked_slots"] == 0
    assert engine.stats()["cache"]["adapters"]["a0"]["requests"] == 4


def test_host_tier_respects_its_byte_budget(artifacts):
    engine = _engine(artifacts, host_cache_bytes=20_000)
    stats = engine.cache.stats()["host"]
    assert stats["bytes"] <= 20_000 and stats["adapters"] < NUM_ADAPTERS
    # An adapter evicted from host memory is read from disk again on its next request.
    evicted = next(n for n, info in engine.stats()["cache"]["adapters"].items() if info["tier"] == "disk")
    assert engine.classify("hello", adapter=evicted)[0].adapter == evicted
    assert engine.cache.stats()["disk"]["loads"] == NUM_ADAPTERS + 1


def test_hash_mismatch_is_refused(artifacts):
    base_dir, adapters = artifacts
    engine = ServingEngine.from_pretrained(base_dir, "classification", num_slots=2, max_rank=4)
    path, sha = adapters["a0"]
    with pytest.raises(AdapterIntegrityError, match="sha256 mismatch"):
        engine.load_adapter("bad", path, "f" * 64)
    assert engine.cache.info("bad").tier == "failed"
    with pytest.raises(AdapterIntegrityError):
        engine.classify("hello", adapter="bad")
    engine.load_adapter("bad", path, sha)  # re-registering with the right digest recovers
    assert engine.classify("hello", adapter="bad")[0].adapter == "bad"


def test_unload_waits_for_running_rows_then_forgets(artifacts):
    engine = _engine(artifacts)
    slot = engine.cache.try_acquire("a1")  # a row in flight holds the slot
    engine.unload_adapter("a1")
    with pytest.raises(AdapterNotFoundError):
        engine.classify("hello", adapter="a1")
    assert engine.slots.slot_rank[slot] > 0  # still installed for the running row
    engine.cache.release(slot)
    assert engine.slots.slot_rank[slot] == 0
    with pytest.raises(AdapterNotFoundError):
        engine.unload_adapter("a1")


def test_requests_wait_for_a_loading_adapter_without_blocking_others(artifacts):
    base_dir, adapters = artifacts
    engine = ServingEngine.from_pretrained(base_dir, "classification", num_slots=2, max_rank=4)
    engine.load_adapter("a0", *adapters["a0"])
    engine.load_adapter("a1", *adapters["a1"], wait=False)  # read by the loader thread
    late = engine.submit_classify("hello", "a1")
    early = engine.classify("hello", adapter="a0")
    assert early[0].adapter == "a0"
    with engine:
        assert late.result(timeout=30).adapter == "a1"


def test_admission_skips_loading_and_stops_at_capacity():
    decisions = {1: Admission.ADMIT, 2: Admission.NOT_READY, 3: Admission.DROP, 4: Admission.ADMIT,
                 5: Admission.NO_CAPACITY, 6: Admission.ADMIT}
    admitted, dropped = select_admissions([1, 2, 3, 4, 5, 6], decisions.__getitem__, free_rows=10)
    assert admitted == [1, 4] and dropped == [3]  # 6 may not overtake 5, blocked on capacity
    admitted, _ = select_admissions([1, 4, 6], decisions.__getitem__, free_rows=2)
    assert admitted == [1, 4]
