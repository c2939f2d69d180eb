"""Strip tiling for stereo super-resolution (NAFSSR). Tensors in, tensors out; no files, no CLI.

Why strips and not tiles: NAFSSR's cross-view attention (SCAM) lets every pixel of a row attend to every
pixel of the same row in the other view, so cutting an image into side-by-side tiles changes the result.
Full-width horizontal strips, the same rows cut from both views, leave SCAM untouched: only the
vertical reach of the 3x3 convolutions and of the TLC local mean crosses a strip boundary.

Exact vertical receptive field, in low-resolution rows (see docs/stereo.md):

* ``intro`` 3x3 conv: 1 row;
* each of the ``n`` blocks: the depthwise 3x3 ``conv2`` (1 row) feeds the TLC local mean, a box of
  ``45`` rows centred on the row (``45 // 2 = 22`` rows each side), that scales the same features:
  23 rows per block. The 1x1 convs, LayerNorm and SCAM work within a row;
* ``up`` 3x3 conv: 1 row (the bilinear skip reaches 1 input row, which is never computed).

So a strip's rows are exact from ``m = 23 n + 2`` rows inside each cut edge (:func:`receptive_field`),
*provided* the TLC mean takes the same form in the strip as in the whole image: the local mean is
replaced by a global mean when the map fits inside the (45, 135) window, and the window is clipped to
maps shorter than 45 rows. A strip of at least :data:`MIN_STRIP_ROWS` (45) rows computes the same
mean as the whole image at every row at least 22 rows from its cut edges. (Exact strips are taller
anyway: the overlap ``2 m`` alone is at least 50 rows.) Without TLC the channel attention averages
over the whole strip, and no strip split is exact.

Neighbouring strips share ``overlap`` rows; in that band the lower strip's weight rises from 0 to 1
with a raised cosine, and the two weights sum to 1 (the sum is divided out where, with a large
overlap, more than two strips meet). The rise is kept ``m`` rows away from both
strips' cut edges when the overlap allows it (``overlap >= 2 m``: the result then equals the
whole-image result), otherwise a quarter of the overlap away.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .archs.tlc import NAFSSR_WINDOW
from .errors import DeviceError, UsageError

#: progress: (strips done, strips total)
Progress = Callable[[int, int], None]
#: a one-line warning for the user (the CLI prints it on stderr)
Warn = Callable[[str], None]

#: rows a strip needs so that the TLC mean takes the same form as in a taller image: fewer rows clip the
#: 45-row window to the strip and change every row's mean. (At exactly 45 rows a strip at most 135
#: columns wide takes the global mean instead, but that equals the single 45-row box of the local form.)
MIN_STRIP_ROWS = NAFSSR_WINDOW[0]
#: the least strip height ``auto`` plans before it falls back to 2-D tiles: two TLC windows, so that a
#: strip holds its overlap and still advances by a window
MIN_AUTO_STRIP_ROWS = 2 * MIN_STRIP_ROWS
#: columns a 2-D tile needs for the same reason, in the fallback for very wide images
MIN_TILE_COLS = NAFSSR_WINDOW[1]
#: cap of the default overlap for deep models, whose exact receptive field exceeds any useful strip:
#: the blend starts one block's reach (23 rows) inside each strip and spans one TLC window (46 rows)
DEFAULT_OVERLAP_CAP = 4 * (NAFSSR_WINDOW[0] // 2 + 1)
#: the largest share of memory ``auto`` takes on the CPU, and its ceiling (bigger strips are not faster
#: on a CPU, the cost per row is the same; they only crowd out other programs)
CPU_MEMORY_FRACTION = 0.5
CPU_MEMORY_CEILING = 4 * 1024**3
#: share of the free CUDA memory ``auto`` plans for (the allocator needs some slack)
CUDA_MEMORY_FRACTION = 0.7


def receptive_field(num_blks: int, window: tuple[int, int] = NAFSSR_WINDOW) -> int:
    """Rows of context, each side, that make an output row exact: ``num_blks * (window_h // 2 + 1) + 2``."""
    return num_blks * (window[0] // 2 + 1) + 2


def default_overlap(num_blks: int) -> int:
    """Rows shared by neighbouring strips when the user gives none: exact (``2 m``) where that is small,
    else :data:`DEFAULT_OVERLAP_CAP` (every official model: ``2 m`` >= 740 rows)."""
    return min(2 * receptive_field(num_blks), DEFAULT_OVERLAP_CAP)


def estimate_bytes(*, height: int, width: int, channels: int, scale: int, batch: int = 1) -> int:
    """Peak working memory of one NAFSSR forward pass on a ``height`` x ``width`` pair (float32).

    Terms fitted to the peak RSS of CPU runs (c 8..128, w 200..2000, h 46..400: within 5 %): the
    attention logits, their scaled copy and a softmax, ``3 h w^2`` floats (the H.W^2 cost of SCAM,
    which dominates for wide images); about ``10 c`` floats per pixel of feature maps (both views, a
    block's 2c-channel inner maps, the float64 integral image of the TLC mean); at the end, the
    upsampled input, the ``up`` outputs and their sum, ``18 s^2`` floats per input pixel.
    """
    hw = height * width
    floats = 3 * hw * width + 10 * channels * hw + 18 * scale * scale * hw
    return 4 * batch * floats


def memory_budget(device: torch.device) -> int:
    """Bytes ``auto`` may plan one strip for: a share of the free CUDA memory, or of MemAvailable (capped)."""
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
        except RuntimeError as e:  # pragma: no cover - driver trouble
            raise DeviceError(f"device {device}: cannot read free memory ({e})") from None
        return int(free * CUDA_MEMORY_FRACTION)
    available = _mem_available()
    return int(min(available * CPU_MEMORY_FRACTION, CPU_MEMORY_CEILING))


def _mem_available() -> int:
    """MemAvailable from /proc/meminfo (Linux), else physical memory, else a conservative 4 GiB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


@dataclass(frozen=True)
class Span:
    """One strip (or column) of the input: rows/cols ``[start, stop)``."""

    start: int
    stop: int


@dataclass(frozen=True)
class StripPlan:
    """How one pair is cut. ``rows``/``cols`` are the spans along each axis (``cols`` has one full-width
    span unless the image is too wide for one strip's attention)."""

    rows: tuple[Span, ...]
    cols: tuple[Span, ...]
    overlap: int
    col_overlap: int
    #: the exact receptive field ``m``: a band of at least ``2 m`` rows keeps each strip's weight 0 within
    #: ``m`` rows of its cut edge (exact); a narrower band keeps it 0 within a quarter of the band
    margin: int

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def exact(self) -> bool:
        """True when the result equals the whole-image result (given TLC is on)."""
        return len(self.cols) == 1 and (len(self.rows) == 1 or self.overlap >= 2 * self.margin)


def spans(length: int, size: int, overlap: int) -> tuple[Span, ...]:
    """Cut ``[0, length)`` into windows of ``size`` sharing at least ``overlap``, spread evenly, the last
    flush with the end."""
    if size >= length:
        return (Span(0, length),)
    if overlap >= size:
        raise UsageError(f"the overlap ({overlap}) must be smaller than the strip/tile size ({size})")
    n = math.ceil((length - overlap) / (size - overlap))
    n = max(n, 2)
    last = length - size
    starts = [round(i * last / (n - 1)) for i in range(n)]
    return tuple(Span(s, s + size) for s in starts)


def ramp(length: int, margin: int) -> torch.Tensor:
    """Weight of the *later* window over a shared band of ``length`` samples: 0 for ``margin`` samples, a
    raised cosine, then 1 for the last ``margin``. The earlier window gets ``1 - ramp``."""
    margin = min(margin, length // 2)
    rise = length - 2 * margin
    w = torch.zeros(length, dtype=torch.float32)
    if rise > 0:
        k = torch.arange(rise, dtype=torch.float64)
        w[margin : margin + rise] = (0.5 - 0.5 * torch.cos(math.pi * (k + 0.5) / rise)).float()
    w[margin + rise :] = 1.0
    return w


def blend_margin(band: int, exact_margin: int) -> int:
    """Zero-weight rows at each side of a shared band: the exact margin when the band holds it twice,
    else a quarter of the band (so the blend stays away from both cut edges)."""
    return exact_margin if band >= 2 * exact_margin else band // 4


def axis_weights(sp: tuple[Span, ...], index: int, exact_margin: int, scale: int) -> torch.Tensor:
    """Weights (at output resolution) of window ``index`` along one axis; they sum to 1 across windows."""
    cur = sp[index]
    w = torch.ones((cur.stop - cur.start) * scale, dtype=torch.float32)
    if index > 0:
        band = sp[index - 1].stop - cur.start
        if band > 0:
            r = ramp(band * scale, blend_margin(band, exact_margin) * scale)
            w[: band * scale] = r
    if index + 1 < len(sp):
        band = cur.stop - sp[index + 1].start
        if band > 0:
            r = ramp(band * scale, blend_margin(band, exact_margin) * scale)
            w[len(w) - band * scale :] *= 1.0 - r
    return w


@dataclass(frozen=True)
class StereoGeometry:
    """What the planner needs to know about the model."""

    channels: int
    num_blks: int
    scale: int


def plan(
    geometry: StereoGeometry,
    height: int,
    width: int,
    *,
    tile: int | str,
    overlap: int | None,
    device: torch.device,
    batch: int = 1,
    warn: Warn | None = None,
    budget: int | None = None,
) -> StripPlan:
    """Choose the strips for an ``height`` x ``width`` pair (input rows/cols).

    ``tile``: ``0`` the whole pair at once; ``N`` strips of N input rows; ``"auto"`` the tallest strip
    that :func:`estimate_bytes` says fits :func:`memory_budget` (the whole pair when it fits), with the
    overlap cut to half a strip if need be. When not even a strip of :data:`MIN_AUTO_STRIP_ROWS` (90)
    rows fits, ``auto`` falls back to 2-D tiles with a half-tile horizontal overlap and says so through
    ``warn``. ``budget`` overrides the memory budget (tests, benchmarks).
    """
    m = receptive_field(geometry.num_blks)
    whole = _strips((Span(0, height),), width, 0, m)
    user_overlap = overlap is not None
    ov = default_overlap(geometry.num_blks) if overlap is None else int(overlap)
    if ov < 0:
        raise UsageError(f"--overlap must be 0 or more rows, not {ov}")

    if isinstance(tile, str):
        if tile.strip().lower() != "auto":
            raise UsageError(f"--tile must be 'auto', 0 or a number of rows, not {tile!r}")
        return _plan_auto(geometry, height, width, ov, user_overlap, device, batch, warn, budget, m)

    rows = int(tile)
    if rows < 0:
        raise UsageError(f"--tile must be 'auto', 0 or a number of rows, not {rows}")
    if rows == 0 or rows >= height:
        return whole
    if rows < MIN_STRIP_ROWS:
        _say(warn, f"--tile {rows}: NAFSSR strips need at least {MIN_STRIP_ROWS} rows (TLC window "
                   f"{NAFSSR_WINDOW[0]} rows); using {MIN_STRIP_ROWS}")
        rows = MIN_STRIP_ROWS
        if rows >= height:
            return whole
    if ov >= rows and user_overlap:
        raise UsageError(f"--overlap {ov} must be smaller than the strip height --tile {rows}")
    if not user_overlap:
        ov = min(ov, rows // 2)  # the default never makes a strip advance by less than half its height
    return _strips(spans(height, rows, ov), width, ov, m)


def _strips(rows: tuple[Span, ...], width: int, overlap: int, margin: int) -> StripPlan:
    return StripPlan(rows=rows, cols=(Span(0, width),), overlap=overlap, col_overlap=0, margin=margin)


def _plan_auto(
    geometry: StereoGeometry,
    height: int,
    width: int,
    ov: int,
    user_overlap: bool,
    device: torch.device,
    batch: int,
    warn: Warn | None,
    budget: int | None,
    m: int,
) -> StripPlan:
    budget = memory_budget(device) if budget is None else budget

    def cost(h: int, w: int) -> int:
        c, s = geometry.channels, geometry.scale
        return estimate_bytes(height=h, width=w, channels=c, scale=s, batch=batch)

    if cost(height, width) <= budget:
        return _strips((Span(0, height),), width, 0, m)
    rows = _largest(lambda h: cost(h, width) <= budget, height)
    if rows >= MIN_AUTO_STRIP_ROWS:
        use_ov = min(ov, rows // 2)  # a strip advances by at least half its height
        if use_ov < ov and user_overlap:
            _say(warn, f"--overlap {ov} reduced to {use_ov} rows: strips of {rows} rows fit in memory")
        return _strips(spans(height, rows, use_ov), width, use_ov, m)

    # Too wide for one strip's attention: 2-D tiles, strips of the least height, columns as wide as fit.
    rows = min(MIN_AUTO_STRIP_ROWS, height)
    row_ov = min(ov, rows // 2)
    cols = _largest(lambda w: cost(rows, w) <= budget, width)
    if cols < 2 * MIN_TILE_COLS:
        raise DeviceError(
            f"a {width}x{height} pair does not fit in the memory available on {device} "
            f"({budget / 2**30:.1f} GiB planned), even in {rows}x{2 * MIN_TILE_COLS} tiles"
        )
    col_ov = cols // 2
    _say(
        warn,
        f"the pair is too wide ({width} columns) for one strip's cross-view attention in "
        f"{budget / 2**30:.1f} GiB; using {rows}x{cols} tiles with a {col_ov}-column overlap "
        "(the result differs slightly from a whole-row run)",
    )
    return StripPlan(
        rows=spans(height, rows, row_ov) if rows < height else (Span(0, height),),
        cols=spans(width, cols, col_ov),
        overlap=row_ov,
        col_overlap=col_ov,
        margin=m,
    )


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


def _say(warn: Warn | None, message: str) -> None:
    if warn is not None:
        warn(message)


def run_strips(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    strip_plan: StripPlan,
    *,
    scale: int,
    device: torch.device,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Run ``forward`` (N x 2C x h x w -> N x 2C x s.h x s.w, on ``device``) over the plan's strips of
    ``x`` (CPU float32) and blend them into one N x 2C x s.H x s.W float32 CPU tensor (not clamped)."""
    n, c, height, width = x.shape
    total = strip_plan.count
    if total == 1:
        out = forward(x.to(device)).float().cpu()
        if progress is not None:
            progress(1, 1)
        return out
    out = torch.zeros((n, c, height * scale, width * scale), dtype=torch.float32)
    m = strip_plan.margin
    # Across columns no margin makes the result exact (the attention sees less of the row), so the
    # blend always starts a quarter of the band in: an exact margin larger than any band gives that.
    col_margin = width + 1
    row_w = [axis_weights(strip_plan.rows, i, m, scale) for i in range(len(strip_plan.rows))]
    col_w = [axis_weights(strip_plan.cols, j, col_margin, scale) for j in range(len(strip_plan.cols))]
    done = 0
    for rs, wr in zip(strip_plan.rows, row_w, strict=True):
        for cs, wc in zip(strip_plan.cols, col_w, strict=True):
            y = forward(x[:, :, rs.start : rs.stop, cs.start : cs.stop].to(device)).float().cpu()
            y.mul_(wr[:, None]).mul_(wc[None, :])
            out[:, :, rs.start * scale : rs.stop * scale, cs.start * scale : cs.stop * scale] += y
            del y
            done += 1
            if progress is not None:
                progress(done, total)
    # Neighbouring weights are complementary, so each axis sums to 1 where only neighbours meet; where
    # windows further apart also meet (a large overlap), dividing by the sum keeps it a weighted mean.
    out.div_(_axis_total(strip_plan.rows, row_w, scale)[:, None])
    out.div_(_axis_total(strip_plan.cols, col_w, scale)[None, :])
    return out


def _axis_total(sp: tuple[Span, ...], weights: list[torch.Tensor], scale: int) -> torch.Tensor:
    total = torch.zeros(sp[-1].stop * scale, dtype=torch.float32)
    for s, w in zip(sp, weights, strict=True):
        total[s.start * scale : s.stop * scale] += w
    return total
