"""Run settings: the device, and what trades speed for something else (precision, threads, compiled mode).

Kept apart from the pipeline so that the workflows can configure threads before any work starts and so
that the choices (and their costs) are documented in one place.
"""

from __future__ import annotations

import os
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


PRECISION_HELP = (
    "fp32 (exact; default), bf16 (several times faster where the CPU/GPU has native bf16; output within "
    "about 1/255 of fp32, PSNR typically 45-55 dB against fp32), fp16 (GPUs only; slightly closer to fp32 "
    "than bf16 but may overflow), auto (bf16 where the hardware has native bf16, else fp32). LayerNorm "
    "statistics, channel means and TLC sums stay in float32 in every mode."
)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (AVX512-BF16/AMX on x86 CPUs; Ampere+ GPUs)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
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


def check_precision(precision: str, device: torch.device) -> str:
    """Validate ``precision`` for ``device``; resolve ``auto``. Returns fp32, bf16 or fp16."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "fp16" and not native_fp16(device):
        # Without native fp16 the CPU kernels fall back to scalar code: ~60x slower than fp32.
        raise UsageError(
            f"precision fp16: this {device.type.upper()} has no native fp16 arithmetic (it would be "
            "many times slower than fp32); use bf16 or fp32"
        )
    return precision


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
    (fixed tile size, edge tiles padded). Inductor freezing folds the weights as constants; on CUDA the
    compiled graph is replayed as a CUDA graph (``reduce-overhead``), which removes the per-kernel
    launch cost that dominates small tiles."""
    try:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    except (ImportError, AttributeError):
        pass
    if device is not None and device.type == "cuda":
        return torch.compile(module, dynamic=False, mode="reduce-overhead")
    return torch.compile(module, dynamic=False)
