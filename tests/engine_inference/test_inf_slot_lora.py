"""Mixed-adapter batches equal plain peft per row, and cost the same ops however many adapters mix."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
from peft import PeftModel
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from inference.engine import (
    AdapterIncompatibleError,
    AdapterIntegrityError,
    AdapterSource,
    SlotLoraModel,
    read_adapter,
)
from inference.engine.testing import build_tiny_bert_classifier, build_tiny_llama, save_random_adapter

torch.set_num_threads(2)
BERT_RANKS = [2, 4, 8]
LLAMA_RANKS = [1, 3, 8]
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    base_dir = build_tiny_bert_classifier(root / "base")
    base = AutoModelForSequenceClassification.from_pretrained(base_dir).eval()
    adapters = {}
    for i, rank in enumerate(BERT_RANKS):
        path = root / f"adapter{i}"
        sha = save_random_adapter(base, path, rank=rank, target_modules=["query", "value"],
                                  modules_to_save=["classifier"], seed=i, use_rslora=(i == 1))
        adapters[f"a{i}"] = AdapterSource(f"a{i}", path, sha)
    return base_dir, adapters


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama")
    base_dir = build_tiny_llama(root / "base")
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    adapters = {}
    for i, rank in enumerate(LLAMA_RANKS):
        path = root / f"adapter{i}"
        # Adapter 2 targets only q/v: the other wrapped layers must stay zero for it.
        targets = LLAMA_TARGETS if i < 2 else ["q_proj", "v_proj"]
        sha = save_random_adapter(base, path, rank=rank, target_modules=targets, seed=10 + i)
        adapters[f"l{i}"] = AdapterSource(f"l{i}", path, sha)
    return base_dir, adapters


def _install_all(model, targets, heads, sources, num_slots, native_kernels=True):
    slots = SlotLoraModel(model, targets, heads, num_slots=num_slots, max_rank=8, native_kernels=native_kernels)
    slot_of = {}
    for slot, (name, source) in enumerate(sources.items(), start=1):
        slots.install(slot, read_adapter(source, slots).tensors)
        slot_of[name] = slot
    return slots, slot_of


def _peft_logits(model_class, base_dir, source, inputs):
    model = model_class.from_pretrained(base_dir).eval()
    if source is not None:
        model = PeftModel.from_pretrained(model, str(source.path)).eval()
    with torch.no_grad():
        return model(**inputs).logits


def test_bert_mixed_batch_matches_peft_per_row(bert):
    base_dir, sources = bert
    model = AutoModelForSequenceClassification.from_pretrained(base_dir).eval()
    slots, slot_of = _install_all(model, ["query", "value"], ["classifier"], sources, num_slots=4)
    ids = torch.randint(2, 300, (6, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    row_adapters = ["a0", "a2", None, "a1", "a2", "a0"]
    with torch.no_grad(), slots.route([slot_of.get(a, 0) for a in row_adapters]):
        mixed = model(input_ids=ids, attention_mask=mask).logits
    base_logits = _peft_logits(AutoModelForSequenceClassification, base_dir, None,
                               {"input_ids": ids, "attention_mask": mask})
    for row, name in enumerate(row_adapters):
        reference = _peft_logits(AutoModelForSequenceClassification, base_dir, sources.get(name),
                                 {"input_ids": ids[row:row + 1], "attention_mask": mask[row:row + 1]})
        torch.testing.assert_close(mixed[row], reference[0], atol=1e-5, rtol=1e-5)
        if name is not None:  # the adapter really changes the output (the test is not vacuous)
            assert (mixed[row] - base_logits[row]).abs().max() > 1e-3


def test_llama_mixed_batch_matches_peft_per_row(llama):
    base_dir, sources = llama
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    slots, slot_of = _install_all(model, LLAMA_TARGETS, [], sources, num_slots=4)
    ids = torch.randint(2, 300, (5, 7), generator=torch.Generator().manual_seed(1))
    row_adapters = ["l2", "l0", "l1", None, "l0"]
    with torch.no_grad(), slots.route([slot_of.get(a, 0) for a in row_adapters]):
        mixed = model(input_ids=ids).logits
    for row, name in enumerate(row_adapters):
        reference = _peft_logits(AutoModelForCausalLM, base_dir, sources.get(name), {"input_ids": ids[row:row + 1]})
        torch.testing.assert_close(mixed[row], reference[0], atol=1e-5, rtol=1e-5)


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


class _CountingKernel:
    """Wraps the native kernel to count its calls (they are not torch ops, so the op counter misses them)."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args):
        self.calls += 1
        return self.function(*args)


@pytest.mark.parametrize("native_kernels", [False, True], ids=["torch-ops", "native-kernel"])
def test_op_count_does_not_grow_with_distinct_adapters(llama, native_kernels):
    base_dir, sources = llama
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    slots = SlotLoraModel(model, LLAMA_TARGETS, num_slots=8, max_rank=8, native_kernels=native_kernels)
    assert slots.native_kernels is native_kernels  # the C compiler is part of the install: the kernel builds
    kernels = {}
    if native_kernels:
        for name, layer in slots.lora_layers.items():
            kernels[name] = layer._native_bgmv = _CountingKernel(layer._native_bgmv)
    source = sources["l1"]  # same rank everywhere: only the number of distinct adapters varies
    tensors = read_adapter(source, slots).tensors
    for slot in range(1, 9):
        slots.install(slot, tensors)
    prompt = torch.randint(2, 300, (8, 6), generator=torch.Generator().manual_seed(2))

    def count(slot_ids, **inputs):
        counter = _OpCounter()
        with torch.no_grad(), slots.route(slot_ids), counter:
            model(**inputs)
        return counter.ops

    # Prompts (several tokens per row): gather + bmm down, gather + baddbmm up, in every wrapped layer.
    count(list(range(1, 9)), input_ids=prompt)  # first forward sizes the shared gather buffer
    one_adapter, eight_adapters = count([1] * 8, input_ids=prompt), count(list(range(1, 9)), input_ids=prompt)
    assert one_adapter == eight_adapters
    assert one_adapter["aten.bmm.default"] == 2 * 4  # the LoRA path really ran in every wrapped layer
    assert one_adapter["aten.baddbmm_.default"] == 2 * 4
    assert sum(kernel.calls for kernel in kernels.values()) == 0  # prompts stay on the batched torch ops

    # Decoding steps (one token per row over a KV cache): bmm down and embedding_bag up, or one native
    # kernel call per wrapped layer.
    with torch.no_grad(), slots.route(list(range(1, 9))):
        cache = model(input_ids=prompt, use_cache=True).past_key_values
    step = prompt[:, :1]
    one_adapter = count([1] * 8, input_ids=step, past_key_values=cache)
    cache.crop(-1)
    eight_adapters = count(list(range(1, 9)), input_ids=step, past_key_values=cache)
    assert one_adapter == eight_adapters
    embedding_bags = one_adapter["aten._embedding_bag.default"] + one_adapter["aten._embedding_bag_forward_only.default"]
    if native_kernels:
        assert embedding_bags == 0 and one_adapter["aten.bmm.default"] == 0  # no LoRA op left in torch
        assert [kernel.calls for kernel in kernels.values()] == [2] * len(kernels) and len(kernels) == 2 * 4
    else:
        assert embedding_bags == 2 * 4


@pytest.mark.parametrize("native_kernels", [False, True], ids=["torch-ops", "native-kernel"])
def test_llama_decode_steps_match_peft_per_row(llama, native_kernels):
    """The decoding path (one token per row, KV cache) agrees with peft per row, mixed ranks and targets,
    through the torch ops and through the native CPU kernel."""
    base_dir, sources = llama
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    slots, slot_of = _install_all(model, LLAMA_TARGETS, [], sources, num_slots=4, native_kernels=native_kernels)
    assert slots.native_kernels is native_kernels
    ids = torch.randint(2, 300, (5, 8), generator=torch.Generator().manual_seed(3))
    row_adapters = ["l1", None, "l0", "l2", "l1"]
    route = [slot_of.get(a, 0) for a in row_adapters]
    with torch.no_grad():
        with slots.route(route):
            cache = model(input_ids=ids[:, :6], use_cache=True).past_key_values
        steps = []
        for position in (6, 7):  # two decoding steps
            with slots.route(route):
                steps.append(model(input_ids=ids[:, position:position + 1], past_key_values=cache).logits[:, -1])
    for row, name in enumerate(row_adapters):
        reference = _peft_logits(AutoModelForCausalLM, base_dir, sources.get(name), {"input_ids": ids[row:row + 1]})
        for step, position in zip(steps, (6, 7), strict=True):
            torch.testing.assert_close(step[row], reference[0, position], atol=1e-5, rtol=1e-5)


def test_slot_pages_are_sized_by_rank_and_freed(bert):
    base_dir, sources = bert
    model = AutoModelForSequenceClassification.from_pretrained(base_dir).eval()
    slots = SlotLoraModel(model, ["query", "value"], ["classifier"], num_slots=2, max_rank=8, num_pages=9)
    small = read_adapter(sources["a0"], slots)  # rank 2, query+value in 2 layers, plus a head
    assert small.tensors.rank == 2
    slots.install(1, small.tensors)
    assert slots.free_pages == 7
    assert slots.slot_device_bytes(1) == small.raw_bytes  # no padding to max_rank
    with pytest.raises(ValueError, match="not enough free pages"):
        slots.install(2, read_adapter(sources["a2"], slots).tensors)
    slots.clear(1)
    assert slots.free_pages == 9
    slots.install(2, read_adapter(sources["a2"], slots).tensors)


def test_reused_routing_follows_installs_and_clears(llama):
    """Routing tables are kept between forwards with the same slots; a slot swapped underneath must
    never be served with the old adapter's pages."""
    base_dir, sources = llama
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    slots = SlotLoraModel(model, LLAMA_TARGETS, num_slots=2, max_rank=8)
    prompt = torch.randint(2, 300, (2, 5), generator=torch.Generator().manual_seed(4))

    def logits(slot_ids):
        with torch.no_grad(), slots.route(slot_ids) as routing:
            return routing, model(input_ids=prompt).logits

    empty_routing, empty = logits([1, 2])  # both slots empty: the base model
    assert empty_routing.rank_width == 0
    assert logits([1, 2])[0] is empty_routing  # same slots, tables reused
    slots.install(1, read_adapter(sources["l0"], slots).tensors)
    slots.install(2, read_adapter(sources["l2"], slots).tensors)
    routing, mixed = logits([1, 2])
    assert routing is not empty_routing and routing.rank_width == 8
    torch.testing.assert_close(mixed[0], _peft_logits(AutoModelForCausalLM, base_dir, sources["l0"], {"input_ids": prompt})[0],
                               rtol=0, atol=1e-5)
    slots.clear(1)
    slots.install(1, read_adapter(sources["l1"], slots).tensors)  # another adapter in the same slot
    routing, swapped = logits([1, 2])
    assert int((routing.page_ids[0] != 0).sum()) == 3  # l1's rank; l0 had 1
    torch.testing.assert_close(swapped[0], _peft_logits(AutoModelForCausalLM, base_dir, sources["l1"], {"input_ids": prompt})[0],
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(swapped[1], mixed[1], rtol=0, atol=0)


def test_adapter_reading_refuses_bad_digest_and_foreign_modules(bert, llama):
    base_dir, sources = bert
    model = AutoModelForSequenceClassification.from_pretrained(base_dir).eval()
    slots = SlotLoraModel(copy.deepcopy(model), ["query", "value"], ["classifier"], num_slots=2, max_rank=8)
    good = sources["a0"]
    with pytest.raises(AdapterIntegrityError, match="sha256 mismatch"):
        read_adapter(AdapterSource("a0", good.path, "0" * 64), slots)
    query_only = SlotLoraModel(copy.deepcopy(model), ["query"], ["classifier"], num_slots=2, max_rank=8)
    with pytest.raises(AdapterIncompatibleError, match="not a wrapped LoRA target"):
        read_adapter(good, query_only)
    too_small = SlotLoraModel(copy.deepcopy(model), ["query", "value"], ["classifier"], num_slots=2, max_rank=4)
    with pytest.raises(AdapterIncompatibleError, match="exceeds"):
        read_adapter(sources["a2"], too_small)
