"""One NAFBlock through the native kernels (``nafblock.cpp``): what the torch side prepares and passes.

The kernels take raw pointers, so everything they read is made contiguous here, in the layout they expect:
the maps channels-last (N, H, W, C), each 1x1 weight transposed to K x N (row k: input channel k), the
depthwise 3x3 weights as nine rows of 2C (one row a tap). The weights are prepared once per block and
kept until the block's weights change (a move to another dtype or device makes new tensors).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .build import Library


def _matrix(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.weight.detach()[:, :, 0, 0].t().contiguous()


def _vector(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.bias.detach().contiguous()


@dataclass
class Prepared:
    """A block's folded weights in the kernels' layout (float32, contiguous)."""

    channels: int
    eps1: float
    eps2: float
    w1t: torch.Tensor
    b1: torch.Tensor
    dwt: torch.Tensor
    dwb: torch.Tensor
    w3t: torch.Tensor
    b3: torch.Tensor
    w4t: torch.Tensor
    b4: torch.Tensor
    w5t: torch.Tensor
    b5: torch.Tensor
    #: what the conv1 weight was when they were made (its storage and in-place version): prepared again
    #: when it changes
    source: tuple[int, int]

    @classmethod
    def of(cls, conv1: torch.nn.Conv2d, conv2: torch.nn.Conv2d, conv3: torch.nn.Conv2d, conv4: torch.nn.Conv2d,
           conv5: torch.nn.Conv2d, eps1: float, eps2: float) -> Prepared:
        c = conv3.out_channels
        dwt = conv2.weight.detach()[:, 0].permute(1, 2, 0).reshape(9, 2 * c).contiguous()
        return cls(c, eps1, eps2, _matrix(conv1), _vector(conv1), dwt, _vector(conv2), _matrix(conv3),
                   _vector(conv3), _matrix(conv4), _vector(conv4), _matrix(conv5), _vector(conv5), weight_key(conv1))


def weight_key(conv: torch.nn.Conv2d) -> tuple[int, int]:
    """What identifies a weight's values: its storage and its in-place version counter."""
    return conv.weight.data_ptr(), conv.weight._version


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def usable(x: torch.Tensor, lib: Library) -> bool:
    """Whether the kernels take this input: float32 on the CPU, channels-last contiguous, a channel count
    they were built for, no gradient wanted."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and not x.requires_grad
            and x.permute(0, 2, 3, 1).is_contiguous() and lib.supports(x.shape[1]))


#: the native block runs on maps of at most this many channels and at least this many bytes (C x H x W
#: float32). Elsewhere oneDNN's fused convolutions win: a small map stays in the caches between its
#: operations, and oneDNN blocks the products of 256+ channels better than the kernels' six-pixel tiles.
#: Measured per block on the 2-core Xeon (ms, native against oneDNN; docs/performance.md): 32 x 1024^2
#: (128 MB) 93 vs 263, 64 x 512^2 77 vs 105, 128 x 256^2 (32 MB) 64-69 vs 75-81, 32 x 512^2 (32 MB) 37 vs
#: 65; 64 x 256^2 (16 MB) 28 vs 29, 128 x 128^2 (8 MB) 23 vs 19; 256 x 256^2 (64 MB) 274 vs 233, 512 x 128^2
#: 452 vs 198.
MAX_CHANNELS = 128
MIN_MAP_BYTES = 24 << 20


def pays(x: torch.Tensor) -> bool:
    """Whether the native block is the faster way for this map (:data:`MAX_CHANNELS`,
    :data:`MIN_MAP_BYTES`)."""
    return x.shape[1] <= MAX_CHANNELS and x[0].numel() * x.element_size() >= MIN_MAP_BYTES


ScaleMap = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, int, int]]


def run_block(lib: Library, w: Prepared, inp: torch.Tensor, scale: ScaleMap) -> torch.Tensor:
    """The block on ``inp`` (N, C, H, W channels_last float32): the front kernel makes the gated map g and
    its channel sums, ``scale(g, sums)`` turns them into the SCA scale (N, h2, w2, C contiguous, with the
    top and left replicate padding), the back kernel makes the output."""
    n, c, h, wd = inp.shape
    threads = torch.get_num_threads()
    x = inp.permute(0, 2, 3, 1)
    g = torch.empty_like(x)
    sums = torch.empty((n, c), dtype=torch.float64)
    if lib.cdll.nb_front(c, _ptr(x), n, h, wd, _ptr(w.w1t), _ptr(w.b1), _ptr(w.dwt), _ptr(w.dwb), w.eps1, _ptr(g),
                         _ptr(sums), threads) != 0:
        raise RuntimeError(f"native NAFBlock front: {c} channels not supported")
    smap, top, left = scale(g.permute(0, 3, 1, 2), sums)
    smap = smap.to(torch.float32).contiguous()
    h2, w2 = smap.shape[1:3]
    out = torch.empty_like(x)
    if lib.cdll.nb_back(c, _ptr(x), _ptr(g), n, h, wd, _ptr(smap), h2, w2, top, left, _ptr(w.w3t), _ptr(w.b3),
                        _ptr(w.w4t), _ptr(w.b4), _ptr(w.w5t), _ptr(w.b5), w.eps2, _ptr(out), threads) != 0:
        raise RuntimeError(f"native NAFBlock back: {c} channels not supported")
    return out.permute(0, 3, 1, 2)


def box_mean(lib: Library, v: torch.Tensor, k1: int, k2: int) -> torch.Tensor:
    """The means over every full ``k1`` x ``k2`` window of ``v`` (N, H, W, C float32, contiguous), stride 1:
    N x (H-k1+1) x (W-k2+1) x C float32, summed in float64 (``nb_box_mean``)."""
    n, h, w, c = v.shape
    out = torch.empty((n, h - k1 + 1, w - k2 + 1, c), dtype=torch.float32)
    if lib.cdll.nb_box_mean(c, _ptr(v), n, h, w, k1, k2, _ptr(out), torch.get_num_threads()) != 0:
        raise ValueError(f"box means: a {k1}x{k2} window does not fit a {h}x{w} map")
    return out


def global_scale(sca: torch.nn.Conv2d, pixels: int) -> ScaleMap:
    """The authors' SCA on the global mean: one scale vector per image."""
    def scale(g: torch.Tensor, sums: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        n, c = sums.shape
        pooled = (sums / pixels).to(torch.float32).view(n, c, 1, 1)
        s = F.conv2d(pooled, sca.weight.float(), sca.bias.float())
        return s.view(n, 1, 1, c), 0, 0
    return scale
