"""Engine extensions for serving Lineage model versions: classifiers trained on Datanets with different
label counts share one base (the head is padded to the largest count and unused logits are masked),
and one server process routes requests to several base models."""

import http.client
import json
import threading

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from inference.engine import AdapterIncompatibleError, ServingEngine
from inference.engine.model_store import publish_adapter, publish_base
from inference.engine.server import serve
from inference.engine.testing import build_tiny_bert_classifier, build_tiny_llama, save_random_adapter

TEXTS = ["hello world", "fees are split to contributors", "the quick brown fox", "one base model"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("labels")
    base_dir = build_tiny_bert_classifier(root / "base", num_labels=2)
    adapters = {}
    for name, labels, seed in (("two", ("billing", "shipping"), 1), ("three", ("red", "green", "blue"), 2)):
        model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=len(labels),
                                                                   ignore_mismatched_sizes=True)
        sha = save_random_adapter(model, root / name, rank=4, target_modules=["query", "value"],
                                  modules_to_save=["classifier"], seed=seed)
        adapters[name] = (root / name, sha, labels)
    return base_dir, adapters


def _reference(base_dir, adapter_dir, labels):
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=len(labels),
                                                               ignore_mismatched_sizes=True)
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    probabilities = []
    with torch.no_grad():
        for text in TEXTS:
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            probabilities.append(dict(zip(labels, torch.softmax(logits, -1).tolist(), strict=True)))
    return probabilities


def test_adapters_with_different_label_counts_share_one_padded_head(bert):
    base_dir, adapters = bert
    engine = ServingEngine.from_pretrained(base_dir, "classification", num_slots=2, max_rank=8, num_labels=5)
    assert engine.num_labels == 5
    for name, (path, sha, labels) in adapters.items():
        engine.load_adapter(name, path, sha, labels=labels)
    # One mixed batch: rows of both adapters interleaved.
    futures = [engine.submit_classify(text, name) for text in TEXTS for name in adapters]
    while not all(f.done() for f in futures):
        engine.step()
    results = [f.result() for f in futures]
    for name, (path, _, labels) in adapters.items():
        expected = _reference(base_dir, path, labels)
        got = [r for r in results if r.adapter == name]
        for result, reference in zip(got, expected, strict=True):
            assert list(result.probabilities) == list(labels)  # only the adapter's own labels
            assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
            for label in labels:
                assert result.probabilities[label] == pytest.approx(reference[label], abs=1e-4)
            assert result.label == max(reference, key=reference.get) and result.slot in (1, 2)
            assert result.input_tokens > 0
    # The padded logits are masked on the device too: the raw head output is -inf past each adapter's labels.
    head = next(iter(engine.slots.heads.values()))
    two_slot = engine.cache.info("two").slot
    assert torch.isinf(head.mask_pool[two_slot, 2:]).all() and (head.mask_pool[two_slot, :2] == 0).all()
    with pytest.raises(AdapterIncompatibleError, match="labels"):
        engine.load_adapter("six", adapters["two"][0], adapters["two"][1], labels=list("abcdef"))
    engine.close()


def _call(address, method, path, body=None):
    connection = http.client.HTTPConnection(*address, timeout=60)
    connection.request(method, path, body=None if body is None else json.dumps(body),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def test_one_server_routes_to_several_bases(bert, tmp_path):
    base_dir, adapters = bert
    llama_dir = build_tiny_llama(tmp_path / "llama")
    root = tmp_path / "model-root"
    publish_base(root, "bert-base", base_dir)  # the server loads by id from its model root, never by path
    publish_base(root, "llama-base", llama_dir)
    path, sha, labels = adapters["three"]
    publish_adapter(root, "three-v1", path)
    server = serve(None, "127.0.0.1", 0, engine_defaults={"num_slots": 2, "max_rank": 8}, model_root=root, token="")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = server.server_address[:2]
    try:
        assert _call(address, "POST", "/v1/classify", {"input": "hi"})[0] == 503  # no base yet
        status, body = _call(address, "POST", "/v1/bases/load",
                             {"name": "bert", "model": "bert-base", "task": "classification", "num_labels": 4})
        assert status == 200 and body["num_labels"] == 4
        assert _call(address, "POST", "/v1/bases/load",
                     {"name": "llama", "model": "llama-base", "task": "causal_lm"})[0] == 200
        # With two bases, a load must say which one.
        status, error = _call(address, "POST", "/v1/adapters/load", {"name": "three", "version": "three-v1", "sha256": sha})
        assert status == 400 and error["error"]["param"] == "base"
        status, info = _call(address, "POST", "/v1/adapters/load", {"name": "three", "version": "three-v1",
                                                                    "sha256": sha, "base": "bert", "labels": list(labels)})
        assert status == 200 and info["base"] == "bert"
        status, body = _call(address, "POST", "/v1/classify", {"input": "hello world", "adapter": "three"})
        assert status == 200 and set(body["results"][0]["probabilities"]) == set(labels)
        status, body = _call(address, "POST", "/v1/generate", {"prompt": "hello", "max_tokens": 3, "temperature": 0})
        assert status == 200 and body["usage"]["completion_tokens"] >= 1  # routed to the causal base
        status, stats = _call(address, "GET", "/v1/stats")
        assert set(stats["bases"]) == {"bert", "llama"}
        assert stats["bases"]["bert"]["cache"]["adapters"]["three"]["requests"] == 1
        status, error = _call(address, "POST", "/v1/classify", {"input": "hi", "base": "nope"})
        assert status == 404 and error["error"]["param"] == "base"
    finally:
        server.shutdown()
        server.server_close()
        server.close_engines()
