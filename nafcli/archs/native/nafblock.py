"""One NAFBlock through the native kernels (``nafblock.cpp``): what the torch side prepares and passes.

The kernels take raw pointers, so everything they read is made contiguous here, in the layout they expect:
the maps channels-last (N, H, W, C), each 1x1 weight transposed to K x N (row k: input channel k) and
packed into the micro-kernel's column panels (:func:`pack`), the depthwise 3x3 weights as nine rows of 2C
(one row a tap). The weights are prepared once per block and kept until the block's weights change (a
move to another dtype or device makes new tensors) or another build's layout is asked for.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .build import Library, cpu_flags, cpu_vendor


def _matrix(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.weight.detach()[:, :, 0, 0].t().contiguous()


def _vector(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.bias.detach().contiguous()


def pack(lib: Library, matrix: torch.Tensor) -> torch.Tensor:
    """A K x N weight (row k: input channel k, float32) in the column panels the kernels' products read
    (``nb_pack``; the layout depends on the build's vector width). Done once when a block's weights are
    prepared: packing at every call cost a 256-channel block 0.53 ms of one thread (~1.4 %; its 1.5 MB of
    weights come from memory), the whole of NAFNet-GoPro-width32 ~1.6 % of a 1056-px tile."""
    m = matrix.detach().to(torch.float32).contiguous()
    k, n = m.shape
    out = torch.empty_like(m)
    if lib.cdll.nb_pack(k, n, _ptr(m), _ptr(out)) != 0:
        raise RuntimeError(f"native weight packing: {k} x {n} not supported")
    return out


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
    #: what they were made from: the conv1 weight (its storage and in-place version) and the packed
    #: layout (the build's vector width); prepared again when either changes (:meth:`fits`)
    source: tuple[int, int, int]

    @classmethod
    def of(cls, lib: Library, conv1: torch.nn.Conv2d, conv2: torch.nn.Conv2d, conv3: torch.nn.Conv2d,
           conv4: torch.nn.Conv2d, conv5: torch.nn.Conv2d, eps1: float, eps2: float) -> Prepared:
        dwt, dwb = depthwise(conv2)
        return cls(conv3.out_channels, eps1, eps2, pack(lib, _matrix(conv1)), _vector(conv1), dwt, dwb,
                   pack(lib, _matrix(conv3)), _vector(conv3), pack(lib, _matrix(conv4)), _vector(conv4),
                   pack(lib, _matrix(conv5)), _vector(conv5), (*weight_key(conv1), lib.vector_width))

    def fits(self, lib: Library, conv1: torch.nn.Conv2d) -> bool:
        """Whether these are still ``conv1``'s block's weights, in ``lib``'s layout."""
        return self.source == (*weight_key(conv1), lib.vector_width)


def weight_key(conv: torch.nn.Conv2d) -> tuple[int, int]:
    """What identifies a weight's values: its storage and its in-place version counter (an inference tensor,
    made under ``torch.inference_mode``, has none: its storage alone)."""
    weight = conv.weight
    return weight.data_ptr(), 0 if weight.is_inference() else weight._version


#: weights in a kernel's layout, with the :func:`weight_key` of the convolution they were made from and
#: the layout's own key (the build's vector width for packed weights, else 0)
Made = tuple[tuple[int, int, int], tuple[torch.Tensor, ...]]


def remade(made: Made | None, conv: torch.nn.Conv2d,
           make: Callable[[torch.nn.Conv2d], tuple[torch.Tensor, ...]], layout: int = 0) -> Made:
    """``made`` while it still matches ``conv``'s weight and ``layout``, else ``make(conv)`` with the new
    key: the one way the blocks and the network keep their kernel-layout weights up to date."""
    key = (*weight_key(conv), layout)
    return made if made is not None and made[0] == key else (key, make(conv))


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def usable(x: torch.Tensor, lib: Library) -> bool:
    """Whether the kernels take this input: float32 on the CPU, channels-last contiguous, a channel count
    they were built for, no gradient wanted."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and not x.requires_grad
            and x.permute(0, 2, 3, 1).is_contiguous() and lib.supports(x.shape[1]))


#: blocks of up to this many channels run whole in the native kernels on a CPU without AVX-512 (the AVX2
#: build, not measured since the kernels' weight panels of 2026-12-02); wider ones as a hybrid (oneDNN's
#: products, the native LayerNorm and depthwise gate)
MAX_BLOCK_CHANNELS = 64
#: with AVX-512, every width built runs whole: measured faster than the hybrid at every width on both
#: AVX-512 CPUs seen, one block, ms, hybrid / whole (``benchmarks/native_block.py``; docs/performance.md).
#: The 2-core Xeon (Sapphire Rapids class), with the packed, L1-sized weight panels and L2-sized blocks of
#: pixels: 64 x 528^2 92.6 / 65.9-67.6, 128 x 264^2 73.5 / 50.2, 256 x 132^2 55.1-59.1 / 46.0-50.0,
#: 512 x 66^2 50.5-54.0 / 47.4-53.0 (before them the kernels lost from 128 channels on: 512 x 128^2
#: 169.4 / 382.2). The Zen 5 EPYC, before the panels: 128 x 264^2 55.0 / 39.4, 256 x 132^2 49.1 / 34.5,
#: 512 x 66^2 38.5-41.3 / 34.7-35.7.
AVX512_WHOLE = 512
#: an integer here overrides the rule: blocks of up to that many channels run whole (0: none do)
WHOLE_ENV = "NAFCLI_NATIVE_WHOLE"


def whole_block_limit() -> int:
    """The widest block (channels) that runs whole in the native kernels on this CPU: ``NAFCLI_NATIVE_WHOLE``
    when it holds an integer, else :data:`AVX512_WHOLE` on a CPU with AVX-512, else
    :data:`MAX_BLOCK_CHANNELS`. A fixed rule, not a timing at run time: every process on a machine (a
    one-thread Ray worker and the two-thread run beside it) must take the same path and write the same
    bytes."""
    override = os.environ.get(WHOLE_ENV, "").strip()
    if override:
        try:
            return int(override)
        except ValueError:
            pass
    return _cpu_limit()


@functools.cache
def _cpu_limit() -> int:
    return AVX512_WHOLE if _avx512() else MAX_BLOCK_CHANNELS


def _avx512() -> bool:
    """Whether this CPU reports AVX-512 (the rules of which kernels run are by instruction set)."""
    return "avx512f" in cpu_flags()[1].split()


#: the narrowest down-sampling (input channels) the native kernels run, where no rule below says otherwise:
#: narrower ones run on oneDNN. On the 2-core Xeon oneDNN was the faster at 32 channels and about even at
#: 256, ms, native / oneDNN: 32 -> 64 on 1056^2 23.2 / 17.6, 256 -> 512 on 132^2 16.3 / 14.8; from 256 on
#: the kernels are used all the same, as oneDNN's 256 -> 512 rounds differently with one thread and with two
#: on an 8 x 10 map there (a one-thread Ray worker must write the bytes of a two-thread run)
NATIVE_DOWN_FROM = 256
#: on an AMD CPU with AVX-512 every width: on the 2-core Zen 5 EPYC the kernels were the faster at each,
#: ms, native / oneDNN, medians in one process: 32 -> 64 on 1056^2 15.3 / 19-31, 64 -> 128 on 528^2
#: 11.9 / 15.8, 128 -> 256 on 264^2 11.9 / 12.4, 256 -> 512 on 132^2 11.2 / 11.7 (a 1056-px tile of
#: NAFNet-SIDD-width32 ~10 ms less, of GoPro-width32 ~15 ms less)
NATIVE_DOWN_FROM_AMD_AVX512 = 32


@functools.cache
def native_down_from() -> int:
    """The narrowest down-sampling convolution (input channels) that runs in the native kernels on this CPU
    (:data:`NATIVE_DOWN_FROM_AMD_AVX512` on an AMD CPU with AVX-512, else :data:`NATIVE_DOWN_FROM`). A
    fixed rule, as :func:`whole_block_limit`: every process on a machine takes the same path."""
    if cpu_vendor() == "AuthenticAMD" and _avx512():
        return NATIVE_DOWN_FROM_AMD_AVX512
    return NATIVE_DOWN_FROM


def whole_block(x: torch.Tensor) -> bool:
    """Whether a block on ``x`` runs whole in the native kernels (else as the hybrid)."""
    return x.shape[1] <= whole_block_limit()


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


def local_scale(lib: Library, weights: tuple[torch.Tensor, torch.Tensor], g: torch.Tensor, k1: int,
                k2: int) -> torch.Tensor:
    """TLC's SCA scale: the 1x1 convolution of :func:`linear_weights` on the means over every full ``k1`` x
    ``k2`` window of ``g`` (N, C, H, W channels_last float32), in one pass (``nb_local_scale``): N x
    (H-k1+1) x (W-k2+1) x C float32, channels-last as the back kernel reads it. The same bytes as
    :func:`box_mean` then :func:`linear`, without the means going through memory."""
    n, c, h, w = g.shape
    v = g.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    out = torch.empty((n, h - k1 + 1, w - k2 + 1, c), dtype=torch.float32)
    if lib.cdll.nb_local_scale(c, _ptr(v), n, h, w, k1, k2, _ptr(weights[0]), _ptr(weights[1]), _ptr(out),
                               torch.get_num_threads()) != 0:
        raise RuntimeError(f"native TLC scale: {c} channels with a {k1}x{k2} window on a {h}x{w} map not supported")
    return out


def linear_weights(lib: Library, conv: torch.nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 convolution as :func:`linear` takes it: the transposed weight (C_in x C_out), packed for
    ``lib``, and the bias (zeros for a convolution without one, as the up-sampling products are)."""
    bias = _vector(conv) if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float32)
    return pack(lib, _matrix(conv)), bias


def linear_supported(lib: Library, k: int, n: int) -> bool:
    """Whether :func:`linear` takes a ``k`` -> ``n`` product (``n`` = ``k`` or ``2k``, ``k`` built)."""
    return lib.supports(k) and n in (k, 2 * k)


def linear(lib: Library, weights: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The 1x1 convolution of :func:`linear_weights` on ``x`` (N, C, H, W channels_last float32) in the kernels'
    micro-kernel (``nb_linear``), channels_last out: the same bytes at every thread count."""
    n, c, h, w = x.shape
    cout = weights[0].shape[1]
    v = x.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    out = torch.empty((n, h, w, cout), dtype=torch.float32)
    if lib.cdll.nb_linear(c, cout, _ptr(v), n * h * w, _ptr(weights[0]), _ptr(weights[1]), _ptr(out),
                          torch.get_num_threads()) != 0:
        raise RuntimeError(f"native 1x1 convolution: {c} -> {cout} channels not supported")
    return out.permute(0, 3, 1, 2)


def down_weights(lib: Library, conv: torch.nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2 stride-2 convolution C -> 2C as :func:`down` takes it: its weight as a 4C x 2C matrix, row
    ``dy * 2C + dx * C + c`` (the patch's top pair of pixels, then the bottom pair), packed for ``lib``,
    and its bias."""
    weight = conv.weight.detach()  # 2C x C x 2 x 2
    return pack(lib, weight.permute(2, 3, 1, 0).reshape(-1, conv.out_channels)), _vector(conv)


def down_supported(lib: Library, conv: torch.nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether :func:`down` takes ``conv`` on ``x``: 2x2, stride 2, no padding, C -> 2C with C built, even
    sides."""
    return (conv.kernel_size == (2, 2) and conv.stride == (2, 2) and conv.padding == (0, 0) and conv.groups == 1
            and conv.bias is not None and conv.out_channels == 2 * conv.in_channels and lib.supports(conv.in_channels)
            and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0)


def down(lib: Library, weights: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The 2x2 stride-2 convolution of :func:`down_weights` on ``x`` (N, C, H, W channels_last float32, even
    sides) in the kernels' micro-kernel (``nb_down``), channels_last out: the same bytes at every thread
    count."""
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    out = torch.empty((n, h // 2, w // 2, 2 * c), dtype=torch.float32)
    if lib.cdll.nb_down(c, _ptr(v), n, h, w, _ptr(weights[0]), _ptr(weights[1]), _ptr(out),
                        torch.get_num_threads()) != 0:
        raise RuntimeError(f"native down-sampling: {c} channels on {h}x{w} not supported")
    return out.permute(0, 3, 1, 2)


def ending_weights(conv: torch.nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 convolution C -> 3 as :func:`ending` takes it: its weight as 3 x 9 x C (output, tap in row
    order, channel) and its bias."""
    return conv.weight.detach().permute(0, 2, 3, 1).contiguous(), _vector(conv)


def ending_supported(lib: Library, conv: torch.nn.Conv2d) -> bool:
    """Whether :func:`ending` takes ``conv``: 3x3, stride 1, padding 1, C -> 3 with C built, with a bias."""
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1) and conv.groups == 1
            and conv.dilation == (1, 1) and conv.bias is not None and conv.out_channels == 3
            and lib.supports(conv.in_channels))


def ending(lib: Library, weights: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor,
           residual: torch.Tensor) -> torch.Tensor:
    """``conv(x) + residual`` for the 3x3 convolution of :func:`ending_weights` (``x``: N, C, H, W
    channels_last float32; ``residual``: N, 3, H, W float32) in one pass (``nb_ending``), channels_last
    out: the same bytes at every thread count."""
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    res = residual.permute(0, 2, 3, 1).contiguous()
    out = torch.empty((n, h, w, 3), dtype=torch.float32)
    if lib.cdll.nb_ending(c, _ptr(v), n, h, w, _ptr(weights[0]), _ptr(weights[1]), _ptr(res), _ptr(out),
                          torch.get_num_threads()) != 0:
        raise RuntimeError(f"native ending convolution: {c} channels not supported")
    return out.permute(0, 3, 1, 2)


def up_skip_weights(lib: Library, conv: torch.nn.Conv2d) -> torch.Tensor:
    """A 1x1 up-sampling product K -> 2K (no bias) as :func:`up_skip` takes it: K x 2K, the columns in the
    order of the pixel shuffle's 2 x 2 patch (column ``(2a + b) * K/2 + c`` is the product's channel
    ``4c + 2a + b``), packed for ``lib``."""
    k = conv.in_channels
    weight = conv.weight.detach()[:, :, 0, 0]  # 2K x K, row 4c + 2a + b
    return pack(lib, weight.view(k // 2, 4, k).permute(2, 1, 0).reshape(k, 2 * k))


def up_skip_supported(lib: Library, conv: torch.nn.Conv2d) -> bool:
    """Whether :func:`up_skip` takes ``conv``: 1x1, no bias, K -> 2K, K built and K/2 a whole number of
    vectors."""
    k = conv.in_channels
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0) and conv.groups == 1
            and conv.bias is None and conv.out_channels == 2 * k and lib.supports(k)
            and (k // 2) % lib.vector_width == 0)


def up_skip(lib: Library, weight: torch.Tensor, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``pixel_shuffle(conv(x), 2) + skip`` for the product of :func:`up_skip_weights` (``x``: N, K, H, W
    channels_last float32; ``skip``: N, K/2, 2H, 2W) in one pass (``nb_up_skip``), channels_last out: the
    same bytes at every thread count."""
    n, k, h, w = x.shape
    v = x.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    s = skip.permute(0, 2, 3, 1).contiguous()
    out = torch.empty((n, 2 * h, 2 * w, k // 2), dtype=torch.float32)
    if lib.cdll.nb_up_skip(k, _ptr(v), n, h, w, _ptr(weight), _ptr(s), _ptr(out), torch.get_num_threads()) != 0:
        raise RuntimeError(f"native up-sampling: {k} channels not supported")
    return out.permute(0, 3, 1, 2)


def layer_norm(lib: Library, x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without affine over the channels of ``x`` (N, C, H, W channels_last float32), one pass;
    channels_last out."""
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    out = torch.empty_like(v)
    if lib.cdll.nb_layer_norm(c, _ptr(v), n * h * w, eps, _ptr(out), torch.get_num_threads()) != 0:
        raise RuntimeError(f"native LayerNorm: {c} channels not supported")
    return out.permute(0, 3, 1, 2)


def depthwise(conv2: torch.nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """conv2's 3x3 weights as nine rows of 2C (one a tap) and its bias, as :func:`dw_gate` takes them."""
    c2 = conv2.out_channels
    return conv2.weight.detach()[:, 0].permute(1, 2, 0).reshape(9, c2).contiguous(), _vector(conv2)


def dw_gate(lib: Library, dw: tuple[torch.Tensor, torch.Tensor], u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``gate(conv2(u))`` of a block (``u``: conv1's output, N, 2C, H, W channels_last float32; ``dw``:
    :func:`depthwise` of conv2) and its channel sums (N x C, float64), one pass."""
    n, c2, h, wd = u.shape
    c = c2 // 2
    v = u.permute(0, 2, 3, 1).contiguous()  # a no-op for channels_last input, which is what comes
    g = torch.empty((n, h, wd, c), dtype=torch.float32)
    sums = torch.empty((n, c), dtype=torch.float64)
    if lib.cdll.nb_dw_gate(c, _ptr(v), n, h, wd, _ptr(dw[0]), _ptr(dw[1]), _ptr(g), _ptr(sums),
                           torch.get_num_threads()) != 0:
        raise RuntimeError(f"native depthwise gate: {c} channels not supported")
    return g.permute(0, 3, 1, 2), sums


def channel_scale(sca: torch.nn.Conv2d, sums: torch.Tensor, pixels: int) -> torch.Tensor:
    """The authors' SCA on the global mean: ``sca(mean)`` per image, N x C float32, from the channel sums
    (N x C, float64). Computed as a float64 product and sum rather than a convolution: oneDNN's 1x1
    convolution of a batch of pooled vectors gives other roundings with other thread counts, and a Ray
    worker of one thread must write the bytes a local run of two writes."""
    weight = sca.weight.detach().double()[:, :, 0, 0]  # C_out x C_in
    mean = sums / pixels
    return ((mean[:, None, :] * weight[None]).sum(-1) + sca.bias.detach().double()).to(torch.float32)


def global_scale(sca: torch.nn.Conv2d, pixels: int) -> ScaleMap:
    """The authors' SCA on the global mean: one scale vector per image."""
    def scale(g: torch.Tensor, sums: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        n, c = sums.shape
        return channel_scale(sca, sums, pixels).view(n, 1, 1, c), 0, 0
    return scale
