"""Choosing the tile and batch size for a model on a device, and running tiles with out-of-memory retries.

The tiler (:mod:`nafcli.tiling`) knows no models; this module is the bridge the :class:`~nafcli.pipeline.
Restorer` uses: it measures what a model costs per pixel, reads how much memory is free, and keeps the
working tile/batch size across the images of a run (after an out-of-memory error the smaller size that
worked is kept, so a batch of photos does not fail on every file).

Defaults, chosen by measurement (``benchmarks/tiling.py``, README "Tiled inference"):

* ``DEFAULT_OVERLAP = 16`` context pixels per side, cross-faded over 16 more: tiled-against-whole PSNR is
  above 50 dB on real photos with NAFNet, and widening it costs speed for nothing visible.
* ``CPU_TILE = 512`` on the CPU: the fastest per megapixel on this kind of machine (smaller tiles waste
  work on the shared bands, larger ones and whole images fall out of the caches), about 0.6 GB of
  activations for the width-32 NAFNets, and at least the 384 px level-0 TLC window.
* On CUDA the tile is as large as ~70 % of the free memory allows (measured per-pixel cost), up to
  ``CUDA_MAX_TILE``; the batch fills what is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import DeviceError, UsageError
from .tiling import Progress, TilePlan, plan_tiles, round_up, run_tiled

DEFAULT_OVERLAP = 16
CPU_TILE = 512
CUDA_MAX_TILE = 2048
#: tiles are never halved below this after out-of-memory errors
MIN_TILE = 128
#: the activations of a NAFNet on the CPU, bytes per input pixel per unit of width (measured with
#: ru_maxrss on the width-32 architecture: ~2.2 kB per pixel at 512 x 512)
CPU_BYTES_PER_PX_PER_WIDTH = 80
CUDA_MAX_BATCH = 16
#: TLC models: tiles at least the level-0 window plus this. A tile no larger than the window makes the
#: local mean the tile's global mean (a TLC deblurring model gave 27 dB against the whole image with
#: 384-px tiles, 52 dB with 512-px ones)
TLC_MARGIN = 128
#: auto: tiles may grow by up to this factor (memory permitting) when that makes fewer of them. Fewer,
#: larger tiles are both faster (less shared work) and closer to the whole image (the channel attention
#: sees more): 1280x720 with 512-px tiles gave 42 dB against the whole image, shrunk to the least
#: covering size (464x384) 30 dB, and one row of 672x720 tiles 59 dB (denoise, random weights)
GROW = 1.25

OutOfMemory: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def parse_size(value: int | str | None, name: str) -> int | None:
    """``auto`` -> None, ``N`` -> N (>= 0). Raises :class:`UsageError` otherwise."""
    if value is None:
        return None
    if isinstance(value, int):
        n = value
    else:
        text = value.strip().lower()
        if text == "auto":
            return None
        try:
            n = int(text)
        except ValueError:
            raise UsageError(f"{name} must be 'auto' or a whole number, not {value!r}") from None
    if n < 0:
        raise UsageError(f"{name} must be >= 0, not {n}")
    return n


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


def cuda_free(device: torch.device) -> int:
    """Free device memory, counting what PyTorch's cache holds but does not use."""
    free, _ = torch.cuda.mem_get_info(device)
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


def cpu_bytes_per_pixel(width: int) -> float:
    return CPU_BYTES_PER_PX_PER_WIDTH * max(width, 1)


def tile_for_budget(budget: float, bytes_per_px: float, multiple: int, *, cap: int, prefer_min: int = 0) -> int:
    """The largest tile (a multiple of ``multiple``, at most ``cap``) whose activations fit ``budget``;
    at least ``prefer_min`` (the TLC window) when that fits, never below :data:`MIN_TILE`."""
    side = int(math.sqrt(max(budget, 0.0) / bytes_per_px)) // multiple * multiple
    tile = min(side, cap)
    if prefer_min and side >= round_up(prefer_min, multiple):
        tile = max(tile, round_up(prefer_min, multiple))
    return max(tile, round_up(MIN_TILE, multiple))


@dataclass
class Sizes:
    """The working tile (0: whole image), overlap and batch size."""

    tile: int
    overlap: int
    batch: int


class TiledRunner:
    """Runs images through ``forward`` with the tiler, choosing sizes and retrying after OOM.

    ``tile``/``batch`` are None for ``auto``. ``width`` and ``tlc_window`` describe the model for the
    automatic choice (the CPU activation estimate and the preferred minimum tile).
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        *,
        scale: int,
        size_multiple: int,
        tile: int | None,
        overlap: int | None,
        batch: int | None,
        width: int,
        tlc_window: int = 0,
    ) -> None:
        self.forward = forward
        self.device = device
        self.scale = scale
        self.multiple = size_multiple
        self.tile = tile
        self.overlap = DEFAULT_OVERLAP if overlap is None else overlap
        self.batch = batch
        self.width = width
        self.tlc_window = tlc_window
        #: TLC: tiles no smaller than this (see TLC_MARGIN)
        self.tlc_min_tile = tlc_window + TLC_MARGIN if tlc_window else 0
        #: auto only: tiles may grow up to this when it saves tiles (see GROW)
        self.max_tile = 0
        self._cuda_cost: float | None = None
        #: how many out-of-memory retries this runner has made
        self.retries = 0

    # -- sizes --------------------------------------------------------------------------------------

    def _bytes_per_px(self, channels: int) -> float:
        if self.device.type == "cuda":
            if self._cuda_cost is None:
                self._cuda_cost = cuda_bytes_per_pixel(self.forward, channels, self.device, self.multiple)
            return self._cuda_cost
        return cpu_bytes_per_pixel(self.width)

    def _auto_tile(self, x: torch.Tensor) -> int:
        n, c, h, w = x.shape
        per_px = self._bytes_per_px(c) * n
        if self.device.type == "cuda":
            budget, cap = 0.7 * cuda_free(self.device), CUDA_MAX_TILE
        else:
            avail = mem_available()
            # the image buffers (input, output, the conversions around them) come first
            buffers = 16.0 * x.numel() * self.scale**2
            budget = (0.5 * avail - buffers) if avail is not None else float("inf")
            cap = CPU_TILE
        tile = tile_for_budget(budget, per_px, self.multiple, cap=cap, prefer_min=self.tlc_min_tile)
        roomy = tile_for_budget(budget, per_px, self.multiple, cap=int(GROW * tile))
        self.max_tile = max(tile, roomy)
        return tile

    def _auto_batch(self, x: torch.Tensor, plan: TilePlan) -> int:
        if self.device.type != "cuda":
            return 1  # on the CPU a batch only adds memory: the cores are busy with one tile
        n, c = x.shape[:2]
        th, tw = plan.tile_size
        per_tile = self._bytes_per_px(c) * n * th * tw
        fits = int(0.7 * cuda_free(self.device) // max(per_tile, 1.0))
        return max(1, min(fits, CUDA_MAX_BATCH, plan.tiles))

    def plan(self, x: torch.Tensor) -> tuple[TilePlan | None, int]:
        """The plan (None: whole image) and batch size the next run of ``x`` will use."""
        if self.tile is None:
            self.tile = self._auto_tile(x)
        if self.tile == 0:
            return None, 1
        h, w = x.shape[-2:]
        try:
            plan = plan_tiles(h, w, self.tile, self.overlap, size_multiple=self.multiple,
                              max_tile=self.max_tile or 0)
        except ValueError as e:
            raise UsageError(f"--tile {self.tile} with --overlap {self.overlap}: {e}") from None
        batch = self.batch if self.batch is not None else self._auto_batch(x, plan)
        return plan, max(1, min(batch, plan.tiles))

    # -- running ------------------------------------------------------------------------------------

    def run(self, x: torch.Tensor, progress: Progress | None = None) -> tuple[torch.Tensor, TilePlan | None, int]:
        """``x`` (N x C x H x W, CPU) -> (float32 output on the CPU, the plan used, the batch used)."""
        while True:
            plan, batch = self.plan(x)
            try:
                if plan is None:
                    out = self.forward(x.to(self.device)).float().cpu()
                    if progress is not None:
                        progress(1, 1)
                else:
                    out = run_tiled(x, self.forward, scale=self.scale, batch_size=batch, progress=progress,
                                    tile=0, plan=plan, out_device=self._out_device(x))
                return out.cpu(), plan, batch
            except OutOfMemory:
                pass  # handled outside the except block, so the failed run's tensors are released
            self._shrink(x, plan, batch)

    def _out_device(self, x: torch.Tensor) -> torch.device:
        """Accumulate on the device only when the output is small there; large images on the CPU."""
        if self.device.type != "cuda":
            return torch.device("cpu")
        out_bytes = 4 * x.numel() * self.scale**2
        return self.device if out_bytes < 0.1 * cuda_free(self.device) else torch.device("cpu")

    def _shrink(self, x: torch.Tensor, plan: TilePlan | None, batch: int) -> None:
        """After an out-of-memory error: halve the batch, else the tile (kept for the rest of the run)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.retries += 1
        self.max_tile = 0  # no growing once memory ran out
        if batch > 1:
            self.batch = batch // 2
            return
        floor = max(round_up(MIN_TILE, self.multiple), round_up(3 * self.overlap + 1, self.multiple))
        current = max(x.shape[-2:]) if plan is None else max(plan.tile_size)
        smaller = (current // 2) // self.multiple * self.multiple
        if smaller < floor:
            raise DeviceError(
                f"out of memory on {self.device} even with {current} px tiles and batch 1 "
                "(close other programs, or use --device cpu)"
            )
        self.tile = smaller
