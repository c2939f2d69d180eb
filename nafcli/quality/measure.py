"""How ``nafcli bench`` measures: FLOPs counted on the meta device, peak memory (the RSS high-water mark
on the CPU, reset through ``/proc/self/clear_refs`` where Linux allows it; max allocated on CUDA), and
timed calls after a warm-up with the device synchronised. Apart from :mod:`.bench` (what is measured and
reported) so that its figures' method reads in one place.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import torch

from .limit import model_flops


def count_flops(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs (2 x multiply-adds) of convolutions and matrix products for one forward of ``shape``, the
    channel attention's 1x1 convolution left out (:func:`nafcli.quality.limit.model_flops`).

    Counted on the meta device, so it costs no compute and no memory whatever the size.
    """
    return model_flops(module, shape)


# -- memory ---------------------------------------------------------------------------------------


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: "5" resets the RSS high-water mark of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# -- timing ---------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[], torch.Tensor], device: torch.device, repeat: int,
    between: Callable[[], None] | None = None, after_each: Callable[[], None] | None = None,
) -> tuple[float, list[float], int, torch.Tensor]:
    """Warm-up call, then ``repeat`` timed calls; returns warm-up s, times, peak bytes (of the whole
    series, or of the timed calls when ``between`` runs: it is called after the warm-up), last output.
    ``after_each`` runs, untimed, after each timed call; the peak is then the first timed call's, before
    anything ``after_each`` allocates (a glibc heap tuned to keep freed memory keeps its pages resident)."""
    reset_peak(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    warm = time.perf_counter() - t0
    if between is not None:
        between()
        reset_peak(device)
    times = []
    peak: int | None = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if after_each is not None:
            if peak is None:
                peak = peak_bytes(device)
            after_each()
    return warm, times, peak_bytes(device) if peak is None else peak, out
