"""The one tiling engine: tensors in, tensors out. Knows no files and no models, only a callable.

Why tiles: NAFNet's activations are ~100x the size of the image, so a 24 MP photo does not fit in a laptop's
memory at once, and on a CPU a few hundred pixels square also runs faster than a whole large image (the
working set stays in cache). Why this shape of tiling:

* **Equal tiles on the model's size multiple.** Every tile has the same size, a multiple of the network's
  size multiple (16 for the official NAFNets), so the network never pads inside a tile and tiles can be
  stacked into batches.
* **Even spacing, last tile on the edge.** The tiles along an axis are spread evenly from the first to the
  last position, so the shared bands are as wide as they can be and no thin sliver tile is needed.
* **Reflect-padded borders.** The image is extended by ``overlap`` reflected pixels on every side (an index
  map, not a copy), so pixels at the image border get the same context as pixels inside; images smaller
  than a tile are extended by reflection up to the tile (repeated reflection, so any size works, 1x1 too).
* **Context that is thrown away, then a cross-fade.** Each tile carries ``overlap`` pixels of context on
  every inner side that get zero weight (they are the pixels the network saw only one side of), and
  neighbouring contributions are cross-faded with a raised cosine across ``blend`` pixels centred on the
  middle of the shared band; everywhere else a tile's weight is flat 1. Neighbouring tiles therefore
  share at least ``2 * overlap + blend`` pixels. The weights are built as differences of ramps, so they
  sum to exactly 1 everywhere (no weight image needs to be kept) and, for a model whose receptive field
  has radius ``r <= overlap``, only exact pixels get any weight: the tiled output equals the output of
  the network on the whole (padded) image.
* **Float32 accumulation** in a buffer on ``out_device`` (the CPU unless the caller says otherwise), so
  only one batch of tiles ever lives on the accelerator.

* **Strips are full-width tiles.** A network that attends along whole rows (NAFSSR) is cut along one axis
  only: :func:`plan_spans` spreads windows that share at least ``overlap`` rows and fades across the middle
  of each shared band, ``margin`` rows away from both cut edges when the band allows it (the exact
  receptive field: the result then equals the whole image's), else a quarter of the band in. The columns
  are one tile spanning the width (or, for an image too wide for memory, spans of their own). The same
  blending, batching and progress serve both.

Each cut between neighbouring tiles has its own cross-fade (centre and width), and tile ``i``'s weight is
``R_{i-1} - R_i`` with ``R_k`` the raised-cosine ramp at cut ``k``: the weights telescope to exactly 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: a batch of tiles (B, C, h, w) -> a batch of outputs (B, C', h*scale, w*scale)
TileFn = Callable[[torch.Tensor], torch.Tensor]
#: (tiles done, tiles total)
Progress = Callable[[int, int], None]

Pair = int | tuple[int, int]


def _pair(v: Pair) -> tuple[int, int]:
    if isinstance(v, tuple):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass(frozen=True)
class AxisPlan:
    """The tiles along one axis, in input pixels. Coordinates are in the padded frame, where the image
    starts at ``pad_before``."""

    length: int
    tile: int
    overlap: int
    blend: int
    pad_before: int
    pad_after: int
    starts: tuple[int, ...]
    #: centres of the cross-fades between tile i and i+1 (padded frame), one fewer than ``starts``
    cuts: tuple[float, ...]
    #: width of each cross-fade (``blend`` for every cut of a tiled axis; per band for spans)
    widths: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.cuts):
            object.__setattr__(self, "widths", (self.blend,) * len(self.cuts))

    @property
    def count(self) -> int:
        return len(self.starts)

    def weights(self, i: int, scale: int = 1) -> torch.Tensor:
        """Blending weights of tile ``i`` at each of its ``tile * scale`` output pixels.

        ``w_i = R_i - R_{i+1}`` with ``R_0 = 1``, ``R_n = 0`` and ``R_k`` a raised-cosine ramp from 0 to 1
        across the ``blend`` band around cut ``k``: the weights of all tiles telescope to exactly 1.
        """
        g = (self.starts[i] * scale + torch.arange(self.tile * scale, dtype=torch.float64)) + 0.5
        lo = self._ramp(g, i - 1, scale) if i > 0 else torch.ones_like(g)
        hi = self._ramp(g, i, scale) if i < self.count - 1 else torch.zeros_like(g)
        return (lo - hi).to(torch.float32)

    def _ramp(self, g: torch.Tensor, k: int, scale: int) -> torch.Tensor:
        c = self.cuts[k] * scale
        if self.widths[k] == 0:
            return (g >= c).to(torch.float64)
        b = self.widths[k] * scale
        t = ((g - (c - b / 2)) / b).clamp_(0.0, 1.0)
        return 0.5 - 0.5 * torch.cos(math.pi * t)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go on an image: one :class:`AxisPlan` per axis."""

    rows: AxisPlan
    cols: AxisPlan

    @property
    def grid(self) -> tuple[int, int]:
        """(tile rows, tile columns)."""
        return self.rows.count, self.cols.count

    @property
    def tiles(self) -> int:
        return self.rows.count * self.cols.count

    @property
    def tile_size(self) -> tuple[int, int]:
        """(height, width) of every tile, in input pixels."""
        return self.rows.tile, self.cols.tile

    def describe(self) -> str:
        r, c = self.grid
        th, tw = self.tile_size
        ov = self.rows.overlap if self.rows.overlap == self.cols.overlap else (self.rows.overlap, self.cols.overlap)
        return f"{r}x{c} tiles of {tw}x{th} px (overlap {ov})"


def plan_axis(
    length: int,
    tile: int,
    overlap: int,
    blend: int,
    multiple: int = 1,
    border: int = 0,
    *,
    max_tile: int = 0,
) -> AxisPlan:
    """Tiles along one axis of ``length`` pixels, extended by ``border`` reflected pixels at both ends.

    ``tile <= 0``, or an axis that fits in one tile: one tile spanning the (extended) axis, exactly as
    long as it (the network pads it, as it would the whole image). Several tiles: all ``tile`` long,
    rounded up to ``multiple``. With ``max_tile`` above ``tile``, tiles may grow up to it when that
    saves tiles: the fewest tiles whose least covering size is at most ``max_tile`` (1024 px with tiles of
    512 growing to 640: 2 tiles of 544, not 3 of 512 sharing 256 px each).
    Raises ``ValueError`` when a tile cannot hold the shared band (``2 * overlap + blend``) plus one pixel.
    """
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    if overlap < 0 or blend < 0 or border < 0:
        raise ValueError("overlap, blend and border must be >= 0")
    multiple = max(1, int(multiple))
    padded = length + 2 * border
    t = round_up(tile, multiple)
    if tile > 0 and max_tile > t and padded > t:
        t = _grown(padded, t, max_tile // multiple * multiple, 2 * overlap + blend, multiple)
    if tile <= 0 or padded <= t:
        return AxisPlan(length, padded, overlap, blend, border, border, (0,), ())
    shared = 2 * overlap + blend
    if t <= shared:
        raise ValueError(f"tile {t} must be larger than 2 x overlap + blend = {shared}")
    n = 1 + -(-(padded - t) // (t - shared))
    step = (padded - t) / (n - 1)
    starts = tuple(round(i * step) for i in range(n))
    cuts = tuple((starts[i + 1] + starts[i] + t) / 2 for i in range(n - 1))
    return AxisPlan(length, t, overlap, blend, border, border, starts, cuts)


def _grown(padded: int, tile: int, max_tile: int, shared: int, multiple: int) -> int:
    """The tile size for the fewest tiles (each at least ``tile``, at most ``max_tile``) on the axis."""
    if padded <= max_tile:
        return padded  # one tile
    if max_tile <= shared:
        return tile
    n = 1 + -(-(padded - max_tile) // (max_tile - shared))  # fewest tiles of max_tile
    least = round_up(-(-(padded + (n - 1) * shared) // n), multiple)
    return max(tile, min(least, max_tile))


def plan_spans(length: int, size: int, overlap: int, margin: int) -> AxisPlan:
    """Windows of ``size`` along an axis of ``length`` that share at least ``overlap`` samples, spread
    evenly with the last one flush with the end (strips along the rows, for full-width tiling).

    Each shared band fades from one window to the next across its middle, keeping ``margin`` samples of
    zero weight at both cut edges when the band holds twice that, else a quarter of the band. ``size >=
    length``: one window spanning the axis. ``ValueError`` when the overlap is not below the size.
    """
    if size >= length:
        return AxisPlan(length, length, 0, 0, 0, 0, (0,), ())
    if overlap >= size:
        raise ValueError(f"the overlap ({overlap}) must be smaller than the strip/tile size ({size})")
    n = max(math.ceil((length - overlap) / (size - overlap)), 2)
    last = length - size
    starts = tuple(round(i * last / (n - 1)) for i in range(n))
    bands = [starts[i] + size - starts[i + 1] for i in range(n - 1)]
    cuts = tuple((starts[i + 1] + starts[i] + size) / 2 for i in range(n - 1))
    widths = tuple(max(band - 2 * (margin if band >= 2 * margin else band // 4), 0) for band in bands)
    return AxisPlan(length, size, overlap, 0, 0, 0, starts, cuts, widths)


def plan_tiles(
    height: int,
    width: int,
    tile: Pair,
    overlap: Pair = 16,
    *,
    blend: Pair | None = None,
    size_multiple: int = 1,
    border: Pair = 0,
    max_tile: int = 0,
) -> TilePlan:
    """The tiling of an ``height x width`` image: ``tile``/``overlap``/``blend``/``border`` per axis as
    (h, w) or one int for both; ``blend`` defaults to ``overlap``; ``max_tile``: see
    :func:`plan_axis`."""
    th, tw = _pair(tile)
    oh, ow = _pair(overlap)
    bh, bw = _pair(blend) if blend is not None else (oh, ow)
    rh, rw = _pair(border)
    return TilePlan(
        rows=plan_axis(height, th, oh, bh, size_multiple, rh, max_tile=max_tile),
        cols=plan_axis(width, tw, ow, bw, size_multiple, rw, max_tile=max_tile),
    )


def reflect_index(length: int, before: int, after: int, device: torch.device | None = None) -> torch.Tensor:
    """Source index for each position of an axis extended by ``before``/``after`` reflected pixels.

    Reflection without repeating the edge pixel (``dcb|abcd|cba``), repeated as often as needed so pads
    larger than the axis work; an axis of one pixel is replicated.
    """
    pos = torch.arange(-before, length + after, device=device)
    if length == 1:
        return torch.zeros_like(pos)
    period = 2 * (length - 1)
    pos = pos.remainder(period)
    return torch.where(pos < length, pos, period - pos)


def reflect_pad(x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """``x`` extended as the tiler sees it (for tests and for comparing with a whole-image run)."""
    iy = reflect_index(plan.rows.length, plan.rows.pad_before, plan.rows.pad_after, x.device)
    ix = reflect_index(plan.cols.length, plan.cols.pad_before, plan.cols.pad_after, x.device)
    return x.index_select(-2, iy).index_select(-1, ix)


def run_tiled(
    x: torch.Tensor,
    fn: TileFn,
    plan: TilePlan,
    *,
    scale: int = 1,
    batch_size: int = 1,
    progress: Progress | None = None,
    out_device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run ``fn`` over the tiles ``plan`` cuts ``x`` (N x C x H x W) into (:func:`plan_tiles`, or
    :func:`plan_spans` for strips) and blend the outputs into N x C' x sH x sW float32.

    ``fn`` receives ``batch_size`` tiles at a time, stacked on the first axis (``batch * N`` rows, on
    ``x``'s device) and may return them on any device and in any float type. The result lives on
    ``out_device`` (default: ``x``'s device).
    """
    if x.dim() != 4:
        raise ValueError(f"expected N x C x H x W, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    out_device = torch.device(out_device) if out_device is not None else x.device
    rows, cols = plan.rows, plan.cols
    iy = reflect_index(h, rows.pad_before, rows.pad_after, x.device)
    ix = reflect_index(w, cols.pad_before, cols.pad_after, x.device)
    wy = [rows.weights(i, scale).to(out_device) for i in range(rows.count)]
    wx = [cols.weights(j, scale).to(out_device) for j in range(cols.count)]
    coords = [(i, j) for i in range(rows.count) for j in range(cols.count)]
    out: torch.Tensor | None = None
    batch_size = max(1, int(batch_size))
    done = 0
    for b0 in range(0, len(coords), batch_size):
        chunk = coords[b0 : b0 + batch_size]
        tiles = torch.cat(
            [
                _take(_take(x, -2, iy[rows.starts[i] : rows.starts[i] + rows.tile]), -1,
                      ix[cols.starts[j] : cols.starts[j] + cols.tile])
                for i, j in chunk
            ]
        )
        y = fn(tiles)
        del tiles
        if out is None:
            out = torch.zeros((n, y.shape[1], h * scale, w * scale), dtype=torch.float32, device=out_device)
        y = y.to(out_device)
        for k, (i, j) in enumerate(chunk):
            _accumulate(out, y[k * n : (k + 1) * n], wy[i], wx[j], rows, cols, i, j, scale)
        del y
        done += len(chunk)
        if progress is not None:
            progress(done, plan.tiles)
    assert out is not None
    return out


def _take(x: torch.Tensor, dim: int, idx: torch.Tensor) -> torch.Tensor:
    """``x.index_select(dim, idx)``, as a view when ``idx`` is a plain range (no reflection in it): a
    gather of full-width rows per tile would copy the whole image strip every time."""
    first, last = int(idx[0]), int(idx[-1])
    if last - first == len(idx) - 1 and bool(torch.all(idx[1:] > idx[:-1])):
        return x.narrow(dim, first, len(idx))
    return x.index_select(dim, idx)


def _accumulate(
    out: torch.Tensor,
    y: torch.Tensor,
    wy: torch.Tensor,
    wx: torch.Tensor,
    rows: AxisPlan,
    cols: AxisPlan,
    i: int,
    j: int,
    scale: int,
) -> None:
    """Add one tile's weighted output into ``out``, cropped to the image (the padding is discarded)."""
    sy = _crop(rows, i, scale)
    sx = _crop(cols, j, scale)
    if sy is None or sx is None:
        return
    (oy0, oy1, ty0, ty1), (ox0, ox1, tx0, tx1) = sy, sx
    weight = wy[ty0:ty1, None] * wx[None, tx0:tx1]
    out[:, :, oy0:oy1, ox0:ox1].addcmul_(y[:, :, ty0:ty1, tx0:tx1].float(), weight)


def _crop(axis: AxisPlan, i: int, scale: int) -> tuple[int, int, int, int] | None:
    """(out start, out end, tile start, tile end) of tile ``i``'s part inside the image, output pixels."""
    a = (axis.starts[i] - axis.pad_before) * scale
    b = a + axis.tile * scale
    o0, o1 = max(a, 0), min(b, axis.length * scale)
    if o1 <= o0:
        return None
    return o0, o1, o0 - a, o1 - a
