"""How much memory there is, and what a model costs per pixel: the one place that reads /proc and CUDA."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from ..errors import DeviceError
from .tiling import round_up

#: when neither /proc/meminfo nor sysconf answers, plan for this much
FALLBACK_BYTES = 4 * 1024**3


def mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of RAM the kernel says can be allocated without swapping (``MemAvailable``), or None."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def ram_available() -> int:
    """:func:`mem_available`, else the physical memory, else :data:`FALLBACK_BYTES`."""
    avail = mem_available()
    if avail is not None:
        return avail
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_BYTES


def cuda_free(device: torch.device) -> int:
    """Free device memory, counting what PyTorch's cache holds but does not use."""
    try:
        free, _ = torch.cuda.mem_get_info(device)
    except RuntimeError as e:  # pragma: no cover - driver trouble
        raise DeviceError(f"device {device}: cannot read free memory ({e})") from None
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def cuda_bytes_per_pixel(forward: Callable[[torch.Tensor], torch.Tensor], channels: int, device: torch.device,
                         multiple: int, probe: int = 256) -> float:
    """Peak device memory of one ``probe``-square tile through ``forward``, per input pixel."""
    side = round_up(probe, multiple)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.zeros((1, channels, side, side), device=device)
    y = forward(x)
    del x, y
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    torch.cuda.empty_cache()
    return max(peak, 1) / (side * side)
