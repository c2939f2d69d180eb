"""How an image is cut for a model on a device, and running it so, with out-of-memory retries.

The engine (:mod:`nafcli.inference.tiling`) knows no models; this module is the bridge the
:class:`~nafcli.inference.restorer.Restorer` uses. The model's tiling mode (its spec says
:class:`~nafcli.archs.Tiles` or :class:`~nafcli.archs.Strips`) decides how: 2-D tiles sized from the
model's cost per pixel and the free memory, or full-width strips sized from the model's memory estimate.
Either way the working size is kept across the images of a run: after an out-of-memory error the smaller
size that worked stays, so a batch of photos does not fail on every file.

Defaults, chosen by measurement (``benchmarks/tiling.py``, README "Tiled inference"):

* ``DEFAULT_OVERLAP = 16`` context pixels per side, cross-faded over 16 more: tiled-against-whole PSNR is
  above 50 dB on real photos with NAFNet, and widening it costs speed for nothing visible.
* ``CPU_TILE = 512`` on the CPU for models with TLC when the native kernels do not run (bf16, no
  compiler): the fastest per megapixel there (smaller tiles waste work on the shared bands; larger ones
  make the local statistics cost more: GoPro-width32 on 2048x2048 took 13.7 s in 560-px tiles and 16.3 s
  in 1072-px ones on the 2-core Xeon), about 0.6 GB of activations for the width-32 NAFNets, and at least
  the 384 px level-0 TLC window. With the native kernels (fp32 on the CPU, ``large_cpu_tiles``) the
  local statistics cost little at any size (sliding sums) and the full-resolution blocks run faster on
  large maps, so TLC models take ``CPU_TILE_GLOBAL`` too: GoPro-width32 on 2048x2048 9.36 s in 1072-px
  tiles against 10.05 s in 560-px ones (same series; 2.3 GB peak against 1.3 GB).
* ``CPU_TILE_GLOBAL = 1024`` for models without TLC (global channel attention): on the 2-core Xeon
  (AVX-512, a large L3) fewer, larger tiles waste less on the shared bands and lose nothing in the
  caches (SIDD-width32 on 2048x2048, same run conditions: 12.9 s in 4x4 tiles of 560, 12.7 s in 3x3 of
  736, 12.1 s in 2x2 of 1072 at 4.1 GB peak; the whole image at once 25 s, out of the caches). On the
  2-core Zen 4 machine 512 was measured fastest: the budget from free memory still caps it.
* On CUDA the tile is as large as ~70 % of the free memory allows (measured per-pixel cost), up to
  ``CUDA_MAX_TILE``; the batch fills what is left.
* Strips: the tallest strip whose estimated memory fits half the available RAM (at most 4 GiB: taller
  strips are no faster on a CPU) or 70 % of the free CUDA memory; the whole pair when it fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..archs import Strips, Tiles, TilingMode
from ..errors import DeviceMemoryError, UsageError
from .cut_options import DEFAULT_OVERLAP
from .memory import cuda_bytes_per_pixel, cuda_free, mem_available, ram_available
from .tiling import AxisPlan, Progress, TilePlan, plan_spans, plan_tiles, round_up, run_tiled

CPU_TILE = 512
CPU_TILE_GLOBAL = 1024
CUDA_MAX_TILE = 2048
#: tiles are never halved below this after out-of-memory errors
MIN_TILE = 128
CUDA_MAX_BATCH = 16
#: auto: tiles may grow by up to this factor (memory permitting) when that makes fewer of them. Fewer,
#: larger tiles are both faster (less shared work) and closer to the whole image (the channel attention
#: sees more): 1280x720 with 512-px tiles gave 42 dB against the whole image, shrunk to the least
#: covering size (464x384) 30 dB, and one row of 672x720 tiles 59 dB (denoise, random weights)
GROW = 1.25
#: strips: the share of memory ``auto`` plans for, and its ceiling on the CPU
CPU_MEMORY_FRACTION = 0.5
CPU_MEMORY_CEILING = 4 * 1024**3
CUDA_MEMORY_FRACTION = 0.7

OutOfMemory: type[BaseException] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

Forward = Callable[[torch.Tensor], torch.Tensor]


def tile_for_budget(budget: float, bytes_per_px: float, multiple: int, *, cap: int, prefer_min: int = 0) -> int:
    """The largest tile (a multiple of ``multiple``, at most ``cap``) whose activations fit ``budget``;
    at least ``prefer_min`` (the TLC window) when that fits, never below :data:`MIN_TILE`."""
    side = int(math.sqrt(max(budget, 0.0) / bytes_per_px)) // multiple * multiple
    tile = min(side, cap)
    if prefer_min and side >= round_up(prefer_min, multiple):
        tile = max(tile, round_up(prefer_min, multiple))
    return max(tile, round_up(MIN_TILE, multiple))


@dataclass
class Cut:
    """How one input is run: the plan (None: the whole image at once), tiles per forward pass, and what
    the user should know about the choice (one line each)."""

    plan: TilePlan | None
    batch: int
    notes: list[str] = field(default_factory=list)
    #: what ``--verbose`` / ``--json`` report: the working tile size or strip height (0: whole image)
    tile_size: int = 0
    #: and the context overlap
    overlap: int = 0

    @property
    def count(self) -> int:
        return 1 if self.plan is None else self.plan.tiles


class TiledRunner:
    """Runs inputs through ``forward`` with the engine, choosing sizes and retrying after OOM.

    ``tile`` / ``batch`` are None for ``auto``; ``tile`` is pixels for :class:`Tiles` and input rows for
    :class:`Strips` (0: the whole input at once). ``overlap`` None takes the mode's default.
    """

    def __init__(
        self,
        forward: Forward,
        device: torch.device,
        mode: TilingMode,
        *,
        scale: int = 1,
        tile: int | None = None,
        overlap: int | None = None,
        batch: int | None = None,
        large_cpu_tiles: bool = False,
    ) -> None:
        self.forward = forward
        #: TLC models get the larger automatic CPU tile too (the native kernels run: see CPU_TILE)
        self.large_cpu_tiles = large_cpu_tiles
        self.device = device
        self.mode = mode
        self.scale = scale
        self.tile = tile
        self.user_overlap = overlap
        self.batch = None if batch is None else max(batch, 1)
        #: Tiles, auto only: tiles may grow up to this when it saves tiles (see GROW)
        self.max_tile = 0
        self._cuda_cost: float | None = None
        #: how many out-of-memory retries this runner has made
        self.retries = 0

    @property
    def overlap(self) -> int:
        """The overlap asked for, or the mode's default."""
        if self.user_overlap is not None:
            return self.user_overlap
        return self.mode.default_overlap if isinstance(self.mode, Strips) else DEFAULT_OVERLAP

    # -- running ------------------------------------------------------------------------------------

    def run(self, x: torch.Tensor, progress: Progress | None = None) -> tuple[torch.Tensor, Cut]:
        """``x`` (N x C x H x W, CPU) -> (float32 output on the CPU, how it was cut)."""
        while True:
            cut = self.plan(x)
            try:
                if cut.plan is None:
                    out = self.forward(x).float().cpu()  # the network call moves x to the device
                    if progress is not None:
                        progress(1, 1)
                else:
                    # When the output is kept on the device, the input goes there too: the tiles are then
                    # cut on the device instead of copied to it one batch at a time.
                    out_device = self._out_device(x)
                    out = run_tiled(x.to(out_device), self.forward, cut.plan, scale=self.scale,
                                    batch_size=cut.batch, progress=progress, out_device=out_device)
                return out.cpu(), cut
            except OutOfMemory:
                pass  # handled outside the except block, so the failed run's tensors are released
            self._shrink(x, cut)

    def plan(self, x: torch.Tensor) -> Cut:
        """How the next run of ``x`` will be cut."""
        if isinstance(self.mode, Strips):
            return self._plan_strips(x, self.mode)
        return self._plan_tiles(x, self.mode)

    def _out_device(self, x: torch.Tensor) -> torch.device:
        """Accumulate on the device only when the output is small there; large images on the CPU."""
        if self.device.type != "cuda":
            return torch.device("cpu")
        out_bytes = 4 * x.numel() * self.scale**2
        return self.device if out_bytes < 0.1 * cuda_free(self.device) else torch.device("cpu")

    def _shrink(self, x: torch.Tensor, cut: Cut) -> None:
        """After an out-of-memory error: halve the batch, else the tile or strip (kept for the run)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.retries += 1
        self.max_tile = 0  # no growing once memory ran out
        if cut.batch > 1:
            self.batch = cut.batch // 2
            return
        if isinstance(self.mode, Strips):
            current = x.shape[-2] if cut.plan is None else cut.plan.rows.tile
            smaller = current // 2
            floor = self.mode.min_rows
        else:
            multiple = self.mode.size_multiple
            floor = max(round_up(MIN_TILE, multiple), round_up(3 * self.overlap + 1, multiple))
            current = max(x.shape[-2:]) if cut.plan is None else max(cut.plan.tile_size)
            smaller = (current // 2) // multiple * multiple
        if smaller < floor:
            raise DeviceMemoryError(
                f"out of memory on {self.device} even with {current} px tiles and batch 1 "
                "(close other programs, or use --device cpu)"
            )
        self.tile = smaller

    # -- 2-D tiles ----------------------------------------------------------------------------------

    def _bytes_per_px(self, mode: Tiles, channels: int) -> float:
        if self.device.type == "cuda":
            if self._cuda_cost is None:
                self._cuda_cost = cuda_bytes_per_pixel(self.forward.eager, channels, self.device, mode.size_multiple)
            return self._cuda_cost
        return mode.cpu_bytes_per_pixel

    def _auto_tile(self, x: torch.Tensor, mode: Tiles) -> int:
        n, c, h, w = x.shape
        per_px = self._bytes_per_px(mode, c) * n
        if self.device.type == "cuda":
            budget, cap = 0.7 * cuda_free(self.device), CUDA_MAX_TILE
        else:
            avail = mem_available()
            # the image buffers (input, output, the conversions around them) come first
            buffers = 16.0 * x.numel() * self.scale**2
            budget = (0.5 * avail - buffers) if avail is not None else float("inf")
            cap = CPU_TILE if mode.min_tile and not self.large_cpu_tiles else CPU_TILE_GLOBAL
        multiple = mode.size_multiple
        tile = tile_for_budget(budget, per_px, multiple, cap=cap, prefer_min=mode.min_tile)
        tile = max(tile, round_up(3 * self.overlap + 1, multiple))  # a large --overlap: tiles that hold it
        roomy = tile_for_budget(budget, per_px, multiple, cap=int(GROW * tile))
        self.max_tile = max(tile, roomy)
        return tile

    def _auto_batch(self, x: torch.Tensor, mode: Tiles, plan: TilePlan) -> int:
        if self.device.type != "cuda":
            return 1  # on the CPU a batch only adds memory: the cores are busy with one tile
        n, c = x.shape[:2]
        th, tw = plan.tile_size
        per_tile = self._bytes_per_px(mode, c) * n * th * tw
        fits = int(0.7 * cuda_free(self.device) // max(per_tile, 1.0))
        return max(1, min(fits, CUDA_MAX_BATCH, plan.tiles))

    def _plan_tiles(self, x: torch.Tensor, mode: Tiles) -> Cut:
        if self.tile is None:
            self.tile = self._auto_tile(x, mode)
        if self.tile == 0:
            return Cut(None, 1, tile_size=0, overlap=self.overlap)
        h, w = x.shape[-2:]
        try:
            plan = plan_tiles(h, w, self.tile, self.overlap, size_multiple=mode.size_multiple,
                              max_tile=self.max_tile or 0)
        except ValueError as e:
            raise UsageError(f"--tile {self.tile} with --overlap {self.overlap}: {e}") from None
        batch = self.batch if self.batch is not None else self._auto_batch(x, mode, plan)
        return Cut(plan, max(1, min(batch, plan.tiles)), tile_size=self.tile, overlap=self.overlap)

    # -- whole frames (videos) ---------------------------------------------------------------------

    def frames_per_pass(self, height: int, width: int, channels: int = 3) -> int:
        """How many equally sized inputs (the frames of a video) to run together, N x C x H x W.

        Only frames that go through the network whole (one tile, or ``--tile 0``) are stacked: then
        ``--batch-size`` counts frames per forward pass, and ``auto`` is as many as fit in 70 % of the free
        CUDA memory (at most :data:`CUDA_MAX_BATCH`), 1 on the CPU, where a batch only adds memory. Frames
        cut into several tiles go one at a time, their tiles batched as a photo's are, so a pass never
        holds more than ``--batch-size`` tiles either way.
        """
        if not isinstance(self.mode, Tiles):
            return 1
        probe = torch.empty((1, channels, height, width), device="meta")
        cut = self.plan(probe)
        if cut.plan is not None and cut.plan.tiles > 1:
            return 1
        if self.batch is not None:
            return self.batch
        if self.device.type != "cuda":
            return 1
        th, tw = (height, width) if cut.plan is None else cut.plan.tile_size
        per_frame = self._bytes_per_px(self.mode, channels) * th * tw
        return max(1, min(int(0.7 * cuda_free(self.device) // max(per_frame, 1.0)), CUDA_MAX_BATCH))

    # -- full-width strips --------------------------------------------------------------------------

    def _budget(self) -> int:
        if self.device.type == "cuda":
            return int(cuda_free(self.device) * CUDA_MEMORY_FRACTION)
        return int(min(ram_available() * CPU_MEMORY_FRACTION, CPU_MEMORY_CEILING))

    def _plan_strips(self, x: torch.Tensor, mode: Strips) -> Cut:
        n = x.shape[0]
        height, width = x.shape[-2:]
        ov = self.overlap
        notes: list[str] = []
        if self.tile is None:
            cut = self._auto_strips(n, height, width, ov, mode, notes)
        else:
            rows = self.tile
            if rows == 0 or rows >= height:
                return Cut(None, 1)
            if rows < mode.min_rows:
                notes.append(f"--tile {rows}: strips need at least {mode.min_rows} rows (the TLC window); "
                             f"using {mode.min_rows}")
                rows = mode.min_rows
                if rows >= height:
                    return Cut(None, 1, notes)
            if ov >= rows and self.user_overlap is not None:
                raise UsageError(f"--overlap {ov} must be smaller than the strip height --tile {rows}")
            if self.user_overlap is None:
                ov = min(ov, rows // 2)  # the default never makes a strip advance by less than half its height
            cut = Cut(TilePlan(plan_spans(height, rows, ov, mode.margin), _full(width)), 1, notes)
        if cut.plan is not None and cut.plan.tiles > 1 and mode.inexact_note:
            cut.notes.append(mode.inexact_note)
        if cut.plan is not None:
            cut.batch = max(1, min(self.batch or self._strip_batch(cut.plan, mode, n), cut.plan.tiles))
            cut.tile_size = cut.plan.rows.tile if cut.plan.tiles > 1 else 0
            cut.overlap = cut.plan.rows.overlap
        return cut

    def _strip_batch(self, plan: TilePlan, mode: Strips, n: int) -> int:
        if self.device.type != "cuda":
            return 1
        one = mode.bytes_for(plan.rows.tile, plan.cols.tile, n)
        return max(1, min(self._budget() // max(one, 1), CUDA_MAX_BATCH))

    def _auto_strips(self, n: int, height: int, width: int, ov: int, mode: Strips, notes: list[str]) -> Cut:
        budget = self._budget()

        def fits(h: int, w: int) -> bool:
            return mode.bytes_for(h, w, n) <= budget

        if fits(height, width):
            return Cut(None, 1, notes)
        rows = _largest(lambda h: fits(h, width), height)
        if rows >= mode.min_auto_rows:
            use_ov = min(ov, rows // 2)  # a strip advances by at least half its height
            if use_ov < ov and self.user_overlap is not None:
                notes.append(f"--overlap {ov} reduced to {use_ov} rows: strips of {rows} rows fit in memory")
            return Cut(TilePlan(plan_spans(height, rows, use_ov, mode.margin), _full(width)), 1, notes)
        # Too wide for one strip's attention: 2-D tiles, strips of the least height, columns as wide as fit.
        rows = min(mode.min_auto_rows, height)
        row_ov = min(ov, rows // 2)
        cols = _largest(lambda w: fits(rows, w), width)
        if cols < 2 * mode.min_cols:
            raise DeviceMemoryError(
                f"a {width}x{height} pair does not fit in the memory available on {self.device} "
                f"({budget / 2**30:.1f} GiB planned), even in {rows}x{2 * mode.min_cols} tiles"
            )
        col_ov = cols // 2
        notes.append(
            f"the pair is too wide ({width} columns) for one strip's cross-view attention in "
            f"{budget / 2**30:.1f} GiB; using {rows}x{cols} tiles with a {col_ov}-column overlap "
            "(the result differs slightly from a whole-row run)"
        )
        # Across columns no margin makes the result exact (the attention sees less of the row), so the
        # blend always starts a quarter of the band in: a margin larger than any band gives that.
        plan = TilePlan(plan_spans(height, rows, row_ov, mode.margin), plan_spans(width, cols, col_ov, width + 1))
        return Cut(plan, 1, notes)


def _full(width: int) -> AxisPlan:
    """One window spanning an axis (the columns of a full-width strip)."""
    return plan_spans(width, width, 0, 0)


def _largest(fits: Callable[[int], bool], upper: int) -> int:
    """Largest n in [0, upper] with fits(n) (fits is monotone decreasing)."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
