"""Generation: greedy parity with HF generate, continuous batching, stop strings, streaming, errors."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from inference.engine import (
    ContextLengthExceededError,
    GenerationParams,
    InvalidRequestError,
    RequestCancelledError,
    ServingEngine,
)
from inference.engine.testing import build_tiny_llama, save_random_adapter

torch.set_num_threads(2)
PROMPTS = ["hello world", "the quick brown fox jumps over", "fees", "one base model serves many adapters"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    base_dir = build_tiny_llama(root / "base", max_positions=64)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    adapters = {}
    for i, rank in enumerate([2, 6]):
        path = root / f"adapter{i}"
        adapters[f"g{i}"] = (path, save_random_adapter(base, path, rank=rank, target_modules=["q_proj", "v_proj"],
                                                        seed=20 + i, scale=0.5))
    return base_dir, adapters


def _engine(artifacts, **config):
    base_dir, adapters = artifacts
    config.setdefault("num_slots", 2)
    engine = ServingEngine.from_pretrained(base_dir, "causal_lm", dtype=torch.float64, max_rank=8, **config)
    for name, (path, sha) in adapters.items():
        engine.load_adapter(name, path, sha)
    return engine


@pytest.fixture(scope="module")
def engine(artifacts):
    return _engine(artifacts)


def test_greedy_equals_hf_generate_on_merged_peft_model(artifacts, engine):
    base_dir, adapters = artifacts
    for adapter, prompt in [(None, PROMPTS[0]), ("g0", PROMPTS[1]), ("g1", PROMPTS[0])]:
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapters[adapter][0])).merge_and_unload()
        ids = engine.tokenizer(prompt, return_tensors="pt")["input_ids"]
        expected = model.eval().generate(ids, max_new_tokens=10, do_sample=False)[0, ids.shape[1]:].tolist()
        result = engine.generate(prompt, adapter, GenerationParams(max_tokens=10, temperature=0))
        assert list(result.token_ids) == expected
        assert result.completion_tokens == len(expected)


def test_continuous_batching_matches_running_each_alone(artifacts):
    engine = _engine(artifacts, num_slots=2, max_batch_rows=3)
    jobs = [  # (prompt, adapter, params, step at which it is submitted)
        (PROMPTS[0], "g0", GenerationParams(max_tokens=9, temperature=0), 0),
        (PROMPTS[1], "g1", GenerationParams(max_tokens=3, temperature=0.9, seed=5), 0),
        (PROMPTS[2], None, GenerationParams(max_tokens=7, temperature=1.0, top_p=0.8, seed=6), 2),
        (PROMPTS[3], "g1", GenerationParams(max_tokens=5, temperature=0), 3),
        (PROMPTS[1], "g0", GenerationParams(max_tokens=6, temperature=0.7, seed=7), 4),
    ]
    streams = {}
    for step in range(40):
        for index, (prompt, adapter, params, at) in enumerate(jobs):
            if at == step:
                streams[index] = engine.submit_generate(prompt, adapter, params)
        engine.step()
        if len(streams) == len(jobs) and all(s._done.is_set() for s in streams.values()):
            break
    batched = {i: s.result(timeout=1) for i, s in streams.items()}
    assert engine.stats()["running"] == 0 and engine.cache.stats()["device"]["locked_slots"] == 0
    for index, (prompt, adapter, params, _) in enumerate(jobs):
        alone = engine.generate(prompt, adapter, params)
        assert batched[index].token_ids == alone.token_ids
        assert batched[index].text == alone.text


def test_stop_strings_cut_the_text(engine):
    full = engine.generate(PROMPTS[1], "g0", GenerationParams(max_tokens=16, temperature=0))
    stop = full.text[len(full.text) // 2: len(full.text) // 2 + 2]
    assert stop  # the random model produced enough text for a stop string in the middle
    result = engine.generate(PROMPTS[1], "g0", GenerationParams(max_tokens=16, temperature=0, stop=[stop]))
    assert result.finish_reason == "stop"
    assert result.text == full.text[: full.text.index(stop)]


def test_streaming_yields_the_same_text_as_non_streaming(engine):
    for params in [GenerationParams(max_tokens=12, temperature=0),
                   GenerationParams(max_tokens=12, temperature=0.8, seed=11, stop=["e "])]:
        expected = engine.generate(PROMPTS[0], "g1", params)
        stream = engine.stream(PROMPTS[0], "g1", params)
        deltas = list(stream)
        assert "".join(deltas) == expected.text == stream.result().text
        assert len(deltas) > 1


def test_seeded_sampling_is_reproducible_and_seeds_differ(engine):
    params = GenerationParams(max_tokens=12, temperature=1.0, seed=3)
    first = engine.generate(PROMPTS[2], "g0", params)
    assert engine.generate(PROMPTS[2], "g0", params).token_ids == first.token_ids
    other = engine.generate(PROMPTS[2], "g0", GenerationParams(max_tokens=12, temperature=1.0, seed=4))
    assert other.token_ids != first.token_ids


def test_cancel_retires_the_row_and_frees_its_slot(engine):
    stream = engine.submit_generate(PROMPTS[0], "g1", GenerationParams(max_tokens=40, temperature=0))
    engine.step()
    stream.cancel()
    engine.step()
    assert stream.result().finish_reason == "cancelled"
    assert engine.stats()["running"] == 0 and engine.cache.stats()["device"]["locked_slots"] == 0
    queued = engine.submit_generate(PROMPTS[0], "g1", GenerationParams(max_tokens=8))
    queued.cancel()
    with pytest.raises(RequestCancelledError):
        queued.result()


@pytest.mark.parametrize("bad", [
    {"temperature": -0.1}, {"temperature": 3}, {"top_p": 0}, {"top_p": 1.5}, {"max_tokens": 0},
    {"max_tokens": 2.5}, {"stop": [""]}, {"stop": ["a", "b", "c", "d", "e"]}, {"seed": "x"},
])
def test_invalid_parameters_raise_clear_errors(bad):
    with pytest.raises(InvalidRequestError) as caught:
        GenerationParams(**bad)
    assert caught.value.param == next(iter(bad)) and caught.value.http_status == 400


def test_prompt_longer_than_context_is_refused(engine):
    with pytest.raises(ContextLengthExceededError, match="context"):
        engine.generate("hello world " * 30, "g0", GenerationParams(max_tokens=4))
    with pytest.raises(ContextLengthExceededError):
        engine.generate("hello", "g0", GenerationParams(max_tokens=64))


def test_a_rare_adapter_is_not_starved_by_a_busy_one(artifacts):
    engine = _engine(artifacts, num_slots=1, max_batch_rows=4)
    busy = [engine.submit_generate(PROMPTS[0], "g0", GenerationParams(max_tokens=4, temperature=0))]
    engine.step()
    rare = engine.submit_generate(PROMPTS[1], "g1", GenerationParams(max_tokens=2, temperature=0))
    for _ in range(12):  # the busy adapter gets a new request every step, forever
        busy.append(engine.submit_generate(PROMPTS[0], "g0", GenerationParams(max_tokens=4, temperature=0)))
        engine.step()
        if rare._done.is_set():
            break
    assert rare.result(timeout=1).completion_tokens == 2
    # Requests of the busy adapter submitted after the rare one were not admitted ahead of it.
    assert all(not s._done.is_set() for s in busy[2:])
    for stream in busy:
        stream.cancel()
