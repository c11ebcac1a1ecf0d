"""The native CPU kernel of the slot-LoRA path (``kernels/bgmv_cpu.c``), built on first use.

On a CPU, a decoding step of a small model spends most of its LoRA time in dispatching four small
torch ops per wrapped layer (gather ``A`` pages, ``bmm`` down, ``embedding_bag`` up, add), not in
arithmetic. The kernel does the same work in one loop per layer. It is a plain C file with no Python
or torch headers, compiled once per machine with the system C compiler (about 0.1 s) into a cache
directory keyed by the source's hash, and called through ``ctypes`` with the tensors' data pointers.

It is an accelerator, never a requirement: with no compiler, a failed build, a read-only cache or
``LINEAGE_NATIVE_KERNELS=0`` the loader returns ``None`` and the PyTorch path runs (the same
numbers to float rounding; tests check both). CUDA tensors always take the PyTorch path.

Environment: ``LINEAGE_NATIVE_KERNELS`` (``1`` default, ``0`` off), ``LINEAGE_NATIVE_CACHE`` (the
build directory; default ``$XDG_CACHE_HOME/lineage/native``, else ``~/.cache/lineage/native``,
falling back to the temporary directory), ``CC`` (the compiler; default ``cc``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels") / "bgmv_cpu.c"
SYMBOL = "lineage_bgmv_f32"
BASE_FLAGS = ("-O3", "-shared", "-fPIC", "-std=c99")
# target_clones needs GCC (or a recent clang) with ifunc support; without it the plain build runs.
FLAG_SETS = (BASE_FLAGS + ("-DLINEAGE_TARGET_CLONES",), BASE_FLAGS)
BUILD_TIMEOUT_S = 120

_ARGTYPES = [
    ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,  # x, rows, in_f
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,  # A pages, B pages, out_f
    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,  # page ids, rank width, out
]


class NativeBuildError(RuntimeError):
    pass


def cache_directories() -> list[Path]:
    configured = os.environ.get("LINEAGE_NATIVE_CACHE")
    if configured:
        return [Path(configured)]
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = Path(xdg) if xdg else Path.home() / ".cache"
    return [home / "lineage" / "native", Path(tempfile.gettempdir()) / f"lineage-native-{os.getuid()}"]


def build_library(source: Path = SOURCE, *, compiler: str | None = None) -> Path:
    """Compile ``source`` into a shared library (or find it already built) and return its path.

    The file name carries a hash of the source, the flags, the compiler and the machine type, so an
    edited kernel or another architecture gets its own build; builds land under a temporary name
    and are renamed into place, so concurrent processes (test workers) never load a half-written file.
    """
    compiler = compiler or os.environ.get("CC", "cc")
    executable = shutil.which(compiler)
    if executable is None:
        raise NativeBuildError(f"no C compiler {compiler!r} on PATH")
    code = source.read_bytes()
    errors = []
    for flags in FLAG_SETS:
        digest = hashlib.sha256(b"\0".join([code, " ".join(flags).encode(), executable.encode(),
                                             platform.machine().encode()])).hexdigest()[:16]
        for directory in cache_directories():
            target = directory / f"{source.stem}-{digest}.so"
            if target.exists():
                return target
            try:
                directory.mkdir(parents=True, exist_ok=True)
                handle, partial = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
                os.close(handle)
            except OSError as exc:
                errors.append(f"{directory}: {exc}")
                continue
            try:
                completed = subprocess.run([executable, *flags, str(source), "-o", partial], capture_output=True,
                                           text=True, timeout=BUILD_TIMEOUT_S, check=False)
                if completed.returncode != 0:
                    errors.append(f"{' '.join(flags)}: {completed.stderr.strip()[-500:]}")
                    break  # these flags fail in any directory: try the next set
                os.replace(partial, target)
                return target
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{directory}: {exc}")
            finally:
                if os.path.exists(partial):
                    os.unlink(partial)
    raise NativeBuildError("; ".join(errors) or "no build directory")


def load_library(path: Path) -> Callable[..., None]:
    function = getattr(ctypes.CDLL(str(path)), SYMBOL)
    function.argtypes = _ARGTYPES
    function.restype = None
    return function


@functools.cache
def bgmv_function() -> Callable[..., None] | None:
    """The compiled kernel, or ``None`` when it is switched off or cannot be built here (logged once)."""
    if os.environ.get("LINEAGE_NATIVE_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        return load_library(build_library())
    except (NativeBuildError, OSError, AttributeError) as exc:
        log.warning("native slot-LoRA kernel unavailable, using the PyTorch path: %s", exc)
        return None


def bgmv_applies(x: torch.Tensor, pages: torch.Tensor) -> bool:
    """Whether the kernel can run on input ``x`` against page tensors like ``pages``: float32 on the
    CPU, ``x`` contiguous and a plain tensor (not a fake or a subclass), and no autograd recording (the
    kernel writes its output in place behind autograd's back). Called in every wrapped layer of every
    step, so it checks only what can differ per call; the page tensors are the layer's own contiguous
    buffers, and ``out`` is the fresh output of ``F.linear`` on a contiguous input."""
    return (
        x.dtype is torch.float32 and pages.dtype is torch.float32 and x.is_cpu and pages.is_cpu
        and type(x) is torch.Tensor and not torch.is_grad_enabled() and x.is_contiguous()
    )


def bgmv_(function: Callable[..., None], out: torch.Tensor, x: torch.Tensor, a_pages: torch.Tensor,
          b_pages: torch.Tensor, page_ids: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """``out[b] += sum_r (x[b] . A[page_ids[b, r]]) * B[page_ids[b, r]]`` in place, one token per row; returns
    ``out``.

    The caller checks :func:`bgmv_applies`; ``page_ids`` is a contiguous int64 ``[rows, width]`` table of
    valid page indices (the slot tables guarantee both)."""
    function(x.data_ptr(), rows, a_pages.shape[1], a_pages.data_ptr(), b_pages.data_ptr(), b_pages.shape[1],
             page_ids.data_ptr(), width, out.data_ptr())
    return out
