"""The TLC local means on the fast path: box means over the valid windows, and their replicate padding.

Apart from :mod:`nafcli.archs.fast_blocks` because it is one piece of knowledge (how the local statistics
of TLC are computed fast and exactly enough) with three ways to the sums: the native kernels' sliding
float64 sums (fp32 and bf16 on the CPU), band-matrix products on small maps, an integral image elsewhere. Same
definition as :func:`nafcli.archs.tlc.local_mean` (the reference); tests/test_fast.py holds them together.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from . import native
from .windows import Window

#: maps larger than this (pixels) keep their running sums in float64: float32 sums of a mean-centred map
#: drift past 1e-5 on a 4000x3000 map with a 24-px window; tiles (<= ~600^2) stay in fast float32.
FLOAT64_SUMS_ABOVE = 1 << 20

#: (left, right, top, bottom) replicate padding that takes the valid box means back to the map's size
Padding = tuple[int, int, int, int]


#: box sums by band-matrix products when each input value takes part in at most this many
#: multiply-adds (small maps, the deep TLC levels): cheaper than the integral image's passes there
GEMM_BOX_MAX_MACS = 256


@functools.lru_cache(maxsize=64)
def _band(n_out: int, n_in: int, k: int, device: torch.device) -> torch.Tensor:
    """(n_out x n_in) float32 matrix of ones where row ``i`` covers inputs ``i .. i+k-1``."""
    i = torch.arange(n_out, device=device)[:, None]
    j = torch.arange(n_in, device=device)[None, :]
    return ((j >= i) & (j < i + k)).to(torch.float32)


def _box_sums_gemm(v: torch.Tensor, k1: int, k2: int) -> torch.Tensor:
    """Window sums over every full k1 x k2 window of ``v`` (N H W C, float32) as two products with band
    matrices: along W a batch of (W2 x W) @ (W x C), then along H one (H2 x H) @ (H x W2*C) per image.
    Direct sums of at most k values each (no running sums), so as exact as float32 sums get."""
    n, h, w, c = v.shape
    h2, w2 = h - k1 + 1, w - k2 + 1
    rows = torch.matmul(_band(w2, w, k2, v.device), v.reshape(n * h, w, c))  # N*H, W2, C
    box = torch.matmul(_band(h2, h, k1, v.device), rows.reshape(n, h, w2 * c))  # N, H2, W2*C
    return box.view(n, h2, w2, c)


def box_geometry(h: int, w: int, window: Window) -> tuple[int, int, Padding]:
    """The window TLC takes on an ``h`` x ``w`` map (``window`` clipped to the map) and the replicate
    padding that brings its valid means, (h-k1+1) x (w-k2+1), back to the map's size."""
    k1, k2 = min(h, window[0]), min(w, window[1])
    h2, w2 = h - k1 + 1, w - k2 + 1
    return k1, k2, ((w - w2) // 2, (w - w2 + 1) // 2, (h - h2) // 2, (h - h2 + 1) // 2)


def valid_box_mean(x: torch.Tensor, window: Window) -> tuple[torch.Tensor, Padding]:
    """The TLC box means over every *full* window (stride 1), float32, channels_last, and the replicate
    padding that brings them back to ``x``'s size (``F.pad(box, padding, mode="replicate")`` is
    :func:`nafcli.archs.tlc.local_mean`).

    Kept apart from the padding because SCA applies a 1x1 convolution to the means: a pointwise map
    commutes with replicate padding, so the block convolves the (h-k1+1) x (w-k2+1) valid means and pads
    afterwards (a 64x64 map with a 48-px window: 17x17 pixels instead of 64x64).

    On the CPU the native kernels' sliding sums in float64 (:func:`nafcli.archs.native.box_mean`: two reads
    of the map, 4-15x faster than the ways below and exact to float32 rounding; a 1072x1072x32 map with
    384-px windows 17 ms instead of 248 ms); a bf16/fp16 map is first made float32 (one pass), which took
    a bf16 GoPro-width32 2048^2 image from 10.53 to 9.03 s on a 2-core Zen 4. Not under torch.compile in
    bf16, whose graph keeps the ways below. Otherwise two ways to the sums, whichever costs
    less: on small maps (the deep levels, where a 70x70 map has
    23x23 valid windows) two products with band matrices (:func:`_box_sums_gemm`, at most
    :data:`GEMM_BOX_MAX_MACS` multiply-adds per value); elsewhere an integral image of the mean-centred
    values (centring keeps the running sums small), written into pre-zeroed buffers (no padding copies),
    the window differences taken by slicing.
    """
    h, w = x.shape[-2:]
    k1, k2, padding = box_geometry(h, w, window)
    v = x.permute(0, 2, 3, 1)  # N H W C (contiguous for channels_last input)
    n, c = v.shape[0], v.shape[-1]
    w2, h2 = w - k2 + 1, h - k1 + 1
    if x.device.type == "cpu" and not v.requires_grad and (
            (v.dtype == torch.float32 and v.is_contiguous())
            or (v.dtype in (torch.bfloat16, torch.float16) and not torch.compiler.is_compiling())):
        lib = native.load()
        if isinstance(lib, native.Library):
            # a bf16 map goes through one pass to float32 first (a no-op for float32): the same sums
            return native.box_mean(lib, v.to(torch.float32).contiguous(), k1, k2).permute(0, 3, 1, 2), padding
    if w2 + h2 * w2 / w <= GEMM_BOX_MAX_MACS and v.is_contiguous():
        box = _box_sums_gemm(v.to(torch.float32), k1, k2).div_(k1 * k2)
        return box.permute(0, 3, 1, 2), padding
    acc = torch.float64 if h * w > FLOAT64_SUMS_ABOVE else torch.float32
    mu = v.mean(dim=(1, 2), keepdim=True, dtype=acc)
    cs = v.new_empty((n, h, w + 1, c), dtype=acc)
    cs[:, :, 0].zero_()
    torch.sub(v, mu, out=cs[:, :, 1:])
    cs[:, :, 1:].cumsum_(2)  # along W
    rows = cs[:, :, k2:] - cs[:, :, :w2]  # N H W2 C: sums over k2 columns
    del cs
    cs = rows.new_empty((n, h + 1, w2, c))
    cs[:, 0].zero_()
    torch.cumsum(rows, 1, out=cs[:, 1:])  # along H
    del rows
    box = torch.sub(cs[:, k1:], cs[:, :h2])
    del cs
    box = box.div_(k1 * k2).add_(mu).to(torch.float32).permute(0, 3, 1, 2)
    return box, padding


def mul_replicated(x: torch.Tensor, s: torch.Tensor, padding: Padding) -> torch.Tensor:
    """``x * F.pad(s, padding, mode="replicate")`` without building the padded ``s``: nine broadcast
    products (the border bands take ``s``'s edge rows/columns), one pass over ``x``."""
    left, _, top, _ = padding
    h2, w2 = s.shape[-2:]
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    rows = ((slice(0, top), slice(0, 1)), (slice(top, top + h2), slice(0, h2)), (slice(top + h2, h), slice(h2 - 1, h2)))
    cols = ((slice(0, left), slice(0, 1)), (slice(left, left + w2), slice(0, w2)), (slice(left + w2, w), slice(w2 - 1, w2)))
    for rx, rs in rows:
        if rx.stop <= rx.start:
            continue
        for cx, cs in cols:
            if cx.stop > cx.start:
                torch.mul(x[:, :, rx, cx], s[:, :, rs, cs], out=out[:, :, rx, cx])
    return out


def fast_local_mean(x: torch.Tensor, window: Window | None) -> torch.Tensor:
    """The TLC local mean (or the global mean when ``window`` is None or covers the map), float32.

    Same definition as :func:`nafcli.archs.tlc.local_mean`; returns N,C,1,1 or N,C,H,W (channels_last).
    """
    h, w = x.shape[-2:]
    if window is None or (window[0] >= h and window[1] >= w):
        return x.mean(dim=(-2, -1), keepdim=True, dtype=torch.float32)
    box, padding = valid_box_mean(x, window)
    return F.pad(box, padding, mode="replicate")
