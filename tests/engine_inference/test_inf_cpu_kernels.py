"""The native CPU kernel of slot-LoRA decoding: same numbers as the torch ops, built once, optional."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.engine import cpu_kernels
from inference.engine.slot_lora import AdapterTensors, SlotLoraModel


class _TwoLayers(nn.Module):
    def __init__(self, features_in: int, features_out: int):
        super().__init__()
        self.up = nn.Linear(features_in, features_out)
        self.down = nn.Linear(features_out, features_in, bias=False)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def _pool(native_kernels: bool, ranks=(1, 3, 8, 5), features=(37, 29)):
    """A pool with adapters of mixed ranks on odd feature sizes (the kernel's 8-wide loop has a tail);
    the last adapter leaves ``down`` untouched (its pages stay zero)."""
    torch.manual_seed(0)
    model = _TwoLayers(*features).eval()
    slots = SlotLoraModel(model, ["up", "down"], num_slots=len(ranks), max_rank=8, native_kernels=native_kernels)
    generator = torch.Generator().manual_seed(1)
    for slot, rank in enumerate(ranks, start=1):
        # LoRA-sized factors (the scale folded into B, as installs do), so float32 rounding stays below 1e-5.
        lora = {"up": (torch.randn(rank, features[0], generator=generator) * 0.2,
                       torch.randn(rank, features[1], generator=generator) * 0.1)}
        if slot < len(ranks):
            lora["down"] = (torch.randn(rank, features[1], generator=generator) * 0.2,
                            torch.randn(rank, features[0], generator=generator) * 0.1)
        slots.install(slot, AdapterTensors(rank, lora, {}))
    return model, slots


def _reference(model, slots, x, route):
    """y = x W + sum over the row's pages of (x A_p) B_p, written out directly from the page tables."""
    rows = []
    for row, slot in enumerate(route):
        pages = slots.slot_pages[slot, :slots.slot_rank[slot]]
        h = x[row]
        for layer, activation in ((slots.lora_layers["up"], torch.relu), (slots.lora_layers["down"], None)):
            h = F.linear(h, layer.base.weight, layer.base.bias) + (h @ layer.a_pages[pages].T) @ layer.b_pages[pages]
            h = activation(h) if activation else h
        rows.append(h)
    return torch.stack(rows)


def test_native_decode_matches_the_torch_ops_and_the_page_tables():
    native_model, native = _pool(native_kernels=True)
    torch_model, plain = _pool(native_kernels=False)
    assert native.native_kernels and not plain.native_kernels
    x = torch.randn(9, 1, 37, generator=torch.Generator().manual_seed(2))
    route = [1, 0, 2, 3, 4, 4, 1, 0, 3]  # mixed ranks, repeats and base-only rows in one batch
    with torch.inference_mode():
        with native.route(route):
            fused = native_model(x)
        with plain.route(route):
            unfused = plain.model(x)
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, _reference(torch_model, plain, x, route), atol=1e-5, rtol=1e-5)
    base_only = F.linear(torch.relu(F.linear(x[1], native_model.up.base.weight, native_model.up.base.bias)),
                         native_model.down.base.weight)
    torch.testing.assert_close(fused[1], base_only, atol=1e-6, rtol=1e-6)  # slot 0 adds nothing


def test_torch_ops_run_where_the_kernel_does_not_apply():
    model, slots = _pool(native_kernels=True)
    layer = slots.lora_layers["up"]
    calls = []
    real = layer._native_bgmv
    layer._native_bgmv = lambda *args: calls.append(args) or real(*args)
    x = torch.randn(4, 1, 37, generator=torch.Generator().manual_seed(3), requires_grad=True)
    route = [1, 2, 3, 4]
    with slots.route(route):
        recorded = model(x)  # autograd records: the in-place kernel would hide the LoRA term from it
    assert calls == [] and recorded.grad_fn is not None
    recorded.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.inference_mode(), slots.route(route):
        model(x.detach())  # the same input, not recorded: the kernel runs (once: only "up" is counted)
    assert len(calls) == 1
    with torch.inference_mode(), slots.route(route):
        strided = torch.randn(4, 1, 74)[:, :, ::2]  # not contiguous: the torch ops take it
        expected = _reference(model, slots, strided, route)
        torch.testing.assert_close(model(strided), expected, atol=1e-5, rtol=1e-5)
    assert len(calls) == 1
    double_model, double_slots = _pool(native_kernels=True)
    double_model.double()  # float64 buffers: the float32 kernel never sees them
    with torch.inference_mode(), double_slots.route(route):
        out = double_model(torch.randn(4, 1, 37, dtype=torch.float64))
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


def test_the_library_is_built_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LINEAGE_NATIVE_CACHE", str(tmp_path))
    first = cpu_kernels.build_library()
    assert first.parent == tmp_path and first.suffix == ".so"
    stamp = first.stat().st_mtime_ns
    assert cpu_kernels.build_library() == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial files left behind
    function = cpu_kernels.load_library(first)
    x, a, b = torch.ones(1, 1, 3), torch.zeros(3, 3), torch.zeros(3, 2)
    a[2], b[2] = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, -1.0])
    out = torch.zeros(1, 1, 2)
    cpu_kernels.bgmv_(function, out, x, a, b, torch.tensor([[2, 0]]), 1, 2)
    assert out.flatten().tolist() == [60.0, -6.0]  # (1+2+3) * B[2]; page 0 skipped


def test_an_edited_kernel_gets_its_own_build(tmp_path, monkeypatch):
    monkeypatch.setenv("LINEAGE_NATIVE_CACHE", str(tmp_path))
    edited = tmp_path / "bgmv_cpu.c"
    edited.write_text(cpu_kernels.SOURCE.read_text() + "\n/* edited */\n")
    assert cpu_kernels.build_library(edited) != cpu_kernels.build_library()


def test_no_compiler_or_a_broken_source_falls_back_to_torch(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LINEAGE_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-here")
    try:
        cpu_kernels.bgmv_function.cache_clear()
        assert cpu_kernels.bgmv_function() is None
        assert "no C compiler 'no-such-compiler-here'" in caplog.text
        model, slots = _pool(native_kernels=True)
        assert not slots.native_kernels
        x = torch.randn(3, 1, 37)
        with torch.inference_mode(), slots.route([1, 2, 0]):
            torch.testing.assert_close(model(x), _reference(model, slots, x, [1, 2, 0]), atol=1e-5, rtol=1e-5)
    finally:
        monkeypatch.delenv("CC")
        cpu_kernels.bgmv_function.cache_clear()  # later tests build the kernel with the real compiler
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C;\n")
    try:
        cpu_kernels.build_library(broken)
    except cpu_kernels.NativeBuildError as exc:
        assert "error" in str(exc)
    else:
        raise AssertionError("a source that does not compile must raise NativeBuildError")
    assert not list(tmp_path.glob("*.so"))


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("LINEAGE_NATIVE_KERNELS", "0")
    try:
        cpu_kernels.bgmv_function.cache_clear()
        assert cpu_kernels.bgmv_function() is None
        assert not _pool(native_kernels=True)[1].native_kernels
    finally:
        monkeypatch.delenv("LINEAGE_NATIVE_KERNELS")
        cpu_kernels.bgmv_function.cache_clear()
    assert cpu_kernels.bgmv_function() is not None
