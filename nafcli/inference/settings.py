"""Run settings: the device, and what trades speed for something else (precision, threads, compiled mode).

Kept apart from the pipeline so that the workflows can configure threads before any work starts and so
that the choices (and their costs) are documented in one place.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DeviceError, UsageError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
#: the torch compute type of each precision
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; checked, not guessed."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r}: CUDA is not available here (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)")

#: Shown in ``--help``: what each precision costs in accuracy (measured with nafcli bench / tests).
def resolve_devices(spec: str | torch.device = "auto") -> list[torch.device]:
    """One device (:func:`resolve_device`), ``all`` (every CUDA device; the CPU where there is none) or a
    comma-separated list (``cuda:0,cuda:2``); duplicates refused."""
    if isinstance(spec, torch.device):
        return [spec]
    text = (spec or "auto").strip().lower()
    if text == "all":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device(f"cuda:{i}") for i in range(count)] or [torch.device("cpu")]
    devices = [resolve_device(part) for part in text.split(",") if part.strip()]
    if not devices:
        raise UsageError(f"--device {spec!r}: name a device (auto, cpu, cuda, cuda:N, all or a list)")
    if len(set(devices)) != len(devices):
        raise UsageError(f"--device {spec!r}: a device is named twice")
    return devices


class _IeeeFp32:
    """The process-wide TF32 switches, turned off while any fp32 CUDA forward runs and restored after
    the last one (a count under a lock: the compute threads of a multi-GPU batch overlap)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved: tuple[Any, ...] = ()

    @staticmethod
    def _new_api() -> bool:
        conv = getattr(torch.backends.cudnn, "conv", None)
        return hasattr(conv, "fp32_precision") and hasattr(torch.backends.cuda.matmul, "fp32_precision")

    def _read(self) -> tuple[Any, ...]:
        if self._new_api():
            return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
        return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32

    def _write(self, state: tuple[Any, ...] | None) -> None:
        """``state`` as :meth:`_read` gave it, or None for IEEE float32 everywhere. Only the API the torch
        build has is used: mixing the legacy ``allow_tf32`` flags with ``fp32_precision`` makes torch
        refuse to read them."""
        if self._new_api():
            conv, matmul = state or ("ieee", "ieee")
            torch.backends.cudnn.conv.fp32_precision = conv
            torch.backends.cuda.matmul.fp32_precision = matmul
        else:
            conv, matmul = state or (False, False)
            torch.backends.cudnn.allow_tf32 = conv
            torch.backends.cuda.matmul.allow_tf32 = matmul

    def enter(self) -> None:
        with self.lock:
            if self.users == 0:
                self.saved = self._read()
                self._write(None)
            self.users += 1

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                self._write(self.saved)


_IEEE_FP32 = _IeeeFp32()


@contextlib.contextmanager
def exact_fp32(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 on a CUDA device as IEEE float32: TF32 off for cuDNN's convolutions and for matrix products
    while the block runs, the user's settings restored after it. PyTorch lets cuDNN convolutions use TF32
    by default (10-bit mantissa inputs: about 1e-3 off float32), so ``fp32`` would otherwise not be the
    exact mode the help promises; bf16 and fp16 are the fast ones. Nothing changes elsewhere."""
    if device.type != "cuda" or precision != "fp32":
        yield
        return
    _IEEE_FP32.enter()
    try:
        yield
    finally:
        _IEEE_FP32.leave()


#: the CPU flags (``/proc/cpuinfo``) that mean native bf16 arithmetic: AVX512-BF16 dot products, AMX tiles,
#: ARMv8.6 BF16
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
#: a bf16 product at least this many times slower than fp32 is worth a warning
SLOW_FACTOR = 1.5


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (x86 ``flags``, ARM ``Features``); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: AVX512-BF16 or AMX on x86 CPUs, BF16 on ARM, Ampere+ GPUs.

    On Linux the CPU's flags decide. oneDNN's own check (used where there are no flags to read) also says
    yes for AVX-512 CPUs that only emulate bf16."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    flags = cpu_flags()
    if flags:
        return bool(flags & BF16_FLAGS)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_fp16(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.lru_cache(maxsize=8)
def measured_slowdown(precision: str, device_type: str = "cpu") -> float:
    """How many times slower than fp32 a ``precision`` matrix product runs here: a 1x1 convolution of a
    NAFNet's first level (32 -> 64 channels, 128x128 channels_last map), median of 3 after a warm-up.
    About 50 ms where the precision is native; measured once per process."""
    import statistics
    import time

    device = torch.device(device_type)
    x = torch.rand((1, 32, 128, 128), device=device).contiguous(memory_format=torch.channels_last)
    w = torch.rand((64, 32, 1, 1), device=device) - 0.5

    def median(dtype: torch.dtype) -> float:
        xd, wd = x.to(dtype), w.to(dtype)
        times = []
        with torch.inference_mode():
            for i in range(4):
                t0 = time.perf_counter()
                torch.nn.functional.conv2d(xd, wd)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:
                    times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return median(DTYPES[precision]) / median(torch.float32)


@dataclass(frozen=True)
class PrecisionChoice:
    """What a requested precision is on a device: the precision that runs, why (for ``auto``), and a
    one-line warning the caller should show once (None when there is nothing to say)."""

    requested: str
    precision: str
    reason: str = ""
    warning: str | None = None


def choose_precision(precision: str, device: torch.device, *, measure: bool = True) -> PrecisionChoice:
    """Validate ``precision`` for ``device`` and resolve ``auto``, saying why.

    ``auto`` is the fastest precision that stays close enough to fp32: bf16 where the device computes it
    natively (PSNR 45-60 dB against fp32; 1.3x faster end to end on a 2-core Zen 4 EPYC with AVX512-BF16,
    2x on a Xeon with AMX, 1.7x on an H200, docs/performance.md), else fp32 (fp16 is never picked: it may
    overflow, and it is no faster than bf16 where both are native). fp16 without native fp16 is refused
    (the CPU kernels fall back to scalar code, ~60x slower). bf16 without native bf16 runs, with a warning
    giving the slowdown measured on this device (``measure``; off: a warning without the figure).
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    kind = device.type.upper()
    if precision == "auto":
        if native_bf16(device):
            how = "AVX512-BF16/AMX" if device.type == "cpu" else "tensor cores"
            return PrecisionChoice("auto", "bf16", f"this {kind} computes bf16 natively ({how}): bf16 is "
                                   "faster than fp32 (1.3-2x where measured) and within 45-60 dB of it")
        return PrecisionChoice("auto", "fp32", f"this {kind} has no native bf16 (it would be emulated, "
                               "slower than fp32): fp32")
    if precision == "fp16" and not native_fp16(device):
        raise UsageError(
            f"precision fp16: this {kind} has no native fp16 arithmetic (it would be "
            "many times slower than fp32); use bf16 or fp32"
        )
    if precision == "bf16" and not native_bf16(device):
        factor = measured_slowdown("bf16", device.type) if measure else None
        if factor is not None and factor < SLOW_FACTOR:
            return PrecisionChoice("bf16", "bf16")  # emulated, but not slower here: nothing to warn about
        cost = "it is emulated" if factor is None else f"its matrix products measured {factor:.0f}x slower than fp32 here"
        return PrecisionChoice("bf16", "bf16", warning=f"precision bf16: this {kind} has no native bf16 (no "
                               f"AVX512-BF16/AMX) and {cost}; use fp32 or --precision auto")
    return PrecisionChoice(precision, precision)


def check_precision(precision: str, device: torch.device) -> str:
    """Validate ``precision`` for ``device``; resolve ``auto``. Returns fp32, bf16 or fp16 (see
    :func:`choose_precision` for the reasons and warnings)."""
    return choose_precision(precision, device, measure=False).precision


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and taskset restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(device: torch.device, workers: int = 1) -> int:
    """Intra-op threads for one of ``workers`` parallel workers on ``device``.

    On CUDA the CPU only feeds the GPU: a couple of threads suffice, more only contend with decoding.
    On the CPU the usable cores are shared between workers, never oversubscribed.
    """
    cores = usable_cores()
    if device.type == "cuda":
        return max(1, min(2, cores // max(workers, 1)))
    return max(1, cores // max(workers, 1))


def configure_threads(threads: int | None, device: torch.device, *, workers: int = 1) -> int:
    """Set torch's thread pools for this process: ``threads`` intra-op (default :func:`default_threads`)
    and one inter-op thread (nafcli runs one graph at a time; extra inter-op threads only oversubscribe).
    Returns the intra-op count."""
    if threads is not None and threads < 0:
        raise UsageError(f"--threads must be >= 0 (0: the usable cores), not {threads}")
    n = default_threads(device, workers) if threads is None or threads <= 0 else threads
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work has started: torch allows it only once
    return n


def compile_module(module: torch.nn.Module, device: torch.device | None = None) -> Any:
    """``torch.compile`` with static shapes: one compilation per input shape, so callers feed one shape
    (fixed tile size, edge tiles padded). On CUDA the compiled graph is replayed as a CUDA graph
    (``reduce-overhead``), which removes the per-kernel launch cost that dominates small tiles.

    Inductor freezing (weights folded in as constants) stays off: on the CPU it turns the weights into
    oneDNN tensors that its FX graph cache cannot store ("mkldnn tensors unpickleable"), so every run
    would compile again; with the weights as graph inputs the compiled kernels are cached on disk
    (:mod:`nafcli.inference.compiled`) and shared by every model of the same architecture."""
    try:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = False
    except (ImportError, AttributeError):
        pass
    if device is not None and device.type == "cuda":
        return torch.compile(module, dynamic=False, mode="reduce-overhead")
    return torch.compile(module, dynamic=False)
