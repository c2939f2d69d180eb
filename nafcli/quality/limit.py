"""The machine's limit for a model: how fast this device multiplies the matrices the model is made of.

On a channels_last feature map a 1x1 convolution is a matrix product, (pixels x C_in) @ (C_in x C_out),
and those products are nearly all of a NAFNet's arithmetic. So the honest ceiling for a NAFNet on a
device is not the device's peak on some large square product, but its throughput on *these* products,
at *these* heights (the pixels of the tile actually run), measured in the same process, on the same
threads, right before the model is timed. :func:`measure_limit` times each distinct shape with
``F.conv2d`` (1x1, channels_last, as the model runs it), ``torch.addmm`` on the flattened map and, in
float32 on a CPU, nafcli's own native product, keeps the fastest (the best this device does on that
product), and combines them weighted by how often the model runs each one: the limit is the model's 1x1
FLOPs divided by the time those products alone take.

The shapes come from the *reference* network (:func:`conv1x1_shapes`), the model's own convolutions,
not from how the fast path happens to split or fuse them, so a rewrite cannot lower the bar it is
measured against. The channel attention's 1x1 convolution is left out (of the shapes, and of the FLOPs
bench counts, :func:`model_flops`): in the authors' global mode it runs on one pooled vector per image,
and the TLC reference applies it to every pixel of the pooled map only as an implementation detail (the
fast path applies it to the valid window means).

Library code: no printing.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..archs import native
from ..inference.settings import exact_fp32

#: products taller than this are timed at this height: the throughput of a product this tall no longer
#: depends on its height (it streams through memory either way), and a 24 MP whole-image map would
#: otherwise need gigabytes for a measurement
MAX_ROWS = 1 << 22
#: each shape is timed at least this many times (after one warm-up call), and until this much time has
#: passed or MAX_REPEAT calls are done; the median is kept
MIN_REPEAT, MAX_REPEAT, MIN_SECONDS = 3, 15, 0.1


@dataclass(frozen=True)
class GemmShape:
    """One matrix product of the model: ``rows`` x ``k`` @ ``k`` x ``n``, run ``count`` times per forward."""

    rows: int
    k: int
    n: int
    count: int = 1

    @property
    def flops(self) -> int:
        """FLOPs of all ``count`` products (2 per multiply-add)."""
        return 2 * self.rows * self.k * self.n * self.count


def _is_channel_attention(name: str) -> bool:
    """The SCA 1x1 convolution of a NAFBlock (``...sca.1``): see the module docstring for why it is left out."""
    return name.endswith("sca.1")


def _meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(module).to("meta")


def _trace(module: torch.nn.Module, shape: tuple[int, ...], on_conv: Callable[[str, torch.nn.Conv2d, tuple], None]
           ) -> int:
    """One forward of a meta copy of ``module`` on ``shape`` (no compute, no memory), calling
    ``on_conv(name, conv, input_shape)`` for every Conv2d it runs; returns the counted FLOPs of the
    forward (convolutions and matrix products, :class:`torch.utils.flop_counter.FlopCounterMode`)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = _meta_copy(module)
    handles = []
    for name, sub in meta.named_modules():
        if isinstance(sub, torch.nn.Conv2d):
            def hook(m: torch.nn.Module, args: tuple, _out: object, name: str = name) -> None:
                on_conv(name, m, tuple(args[0].shape))  # type: ignore[arg-type]

            handles.append(sub.register_forward_hook(hook))
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            meta(torch.empty(shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops())


def _is_gemm(conv: torch.nn.Conv2d) -> bool:
    return conv.kernel_size == (1, 1) and conv.groups == 1 and conv.stride == (1, 1) and conv.padding in ((0, 0), 0)


def model_flops(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward of ``shape``: every convolution and matrix product except the channel
    attention's 1x1 convolution. Counted on the meta device: no compute and no memory whatever the size."""
    excluded = 0

    def on_conv(name: str, conv: torch.nn.Conv2d, in_shape: tuple) -> None:
        nonlocal excluded
        if _is_channel_attention(name) and _is_gemm(conv):
            n, _, h, w = in_shape
            excluded += 2 * n * h * w * conv.in_channels * conv.out_channels

    return _trace(module, shape, on_conv) - excluded


def conv1x1_shapes(module: torch.nn.Module, shape: tuple[int, ...]) -> list[GemmShape]:
    """The 1x1 convolutions one forward of ``shape`` runs, as matrix products (channel attention left out),
    distinct shapes with their counts, largest FLOPs first."""
    seen: Counter[tuple[int, int, int]] = Counter()

    def on_conv(name: str, conv: torch.nn.Conv2d, in_shape: tuple) -> None:
        if _is_gemm(conv) and not _is_channel_attention(name):
            n, _, h, w = in_shape
            seen[(n * h * w, conv.in_channels, conv.out_channels)] += 1

    _trace(module, shape, on_conv)
    shapes = [GemmShape(rows, k, n, count) for (rows, k, n), count in seen.items()]
    return sorted(shapes, key=lambda s: -s.flops)


@dataclass
class ShapeTiming:
    """One timed shape: the fastest of the ways timed, in GFLOP/s at the height timed."""

    shape: GemmShape
    seconds: float
    gflops_per_second: float
    #: ``conv2d``, ``addmm`` or ``native``: which was fastest
    method: str
    #: the height timed (``shape.rows`` capped at :data:`MAX_ROWS`)
    rows_timed: int


@dataclass
class Limit:
    """The device's throughput on a model's 1x1 products for one dtype and one input shape."""

    dtype: str
    device: str
    #: the network input the shapes were taken from (N x C x H x W: one tile, or batch of tiles)
    input_shape: tuple[int, ...]
    shapes: list[ShapeTiming] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """1x1 FLOPs of one forward of ``input_shape``."""
        return sum(t.shape.flops for t in self.shapes)

    @property
    def seconds(self) -> float:
        """Time the 1x1 products of one forward take at the measured rates."""
        return sum(t.seconds * t.shape.count * t.shape.rows / t.rows_timed for t in self.shapes)

    @property
    def gflops_per_second(self) -> float:
        return self.flops / 1e9 / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "device": self.device,
            "input_shape": list(self.input_shape),
            "gflops_per_second": self.gflops_per_second,
            "shapes": [
                {"rows": t.shape.rows, "k": t.shape.k, "n": t.shape.n, "count": t.shape.count,
                 "rows_timed": t.rows_timed, "gflops_per_second": t.gflops_per_second, "method": t.method}
                for t in self.shapes
            ],
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], object], device: torch.device) -> float:
    fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MIN_REPEAT or (len(times) < MAX_REPEAT and time.perf_counter() - start < MIN_SECONDS):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _native_product(fmap: torch.Tensor, w4: torch.Tensor, bias: torch.Tensor) -> Callable[[], object] | None:
    """The native kernels' own 1x1 product (``nafcli.archs.native.linear``) on ``fmap``, where they load and
    take its shape (float32 on the CPU), else None."""
    if fmap.device.type != "cpu" or fmap.dtype != torch.float32:
        return None
    lib = native.load()
    n, k = w4.shape[:2]
    if not isinstance(lib, native.Library) or not native.linear_supported(lib, k, n):
        return None
    conv = torch.nn.Conv2d(k, n, 1)
    with torch.no_grad():
        conv.weight.copy_(w4)
        conv.bias.copy_(bias)  # type: ignore[union-attr]
    weights = native.linear_weights(lib, conv)
    return lambda: native.linear(lib, weights, fmap)


def time_shape(shape: GemmShape, dtype: torch.dtype, device: torch.device, *, seed: int = 0) -> ShapeTiming:
    """Seconds of one ``shape`` product on ``device`` in ``dtype``: the fastest of a channels_last 1x1
    ``F.conv2d`` (what the model runs), ``torch.addmm`` on the flattened map, both with a bias, and, in
    float32 on a CPU where they load, the native kernels' own product (``native``: faster than oneDNN's on
    some of these shapes, so the limit would otherwise not be the best this device does)."""
    rows = min(shape.rows, MAX_ROWS)
    # made on the device in the product's dtype: on a GPU, drawing a 4M x 128 operand on the CPU and copying
    # it over took longer than timing it (seconds a shape, a minute a row of a 24 MP image)
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.rand((rows, shape.k), generator=gen, device=device, dtype=dtype)
    w = torch.rand((shape.n, shape.k), generator=gen, device=device, dtype=dtype) - 0.5
    bias = torch.rand((shape.n,), generator=gen, device=device, dtype=dtype)
    # the same memory seen as a 1 x k x 1 x rows channels_last map (channels innermost)
    fmap = a.reshape(1, 1, rows, shape.k).permute(0, 3, 1, 2)
    w4 = w.reshape(shape.n, shape.k, 1, 1)
    wt = w.t()
    own = _native_product(fmap, w4, bias)
    # float32 on CUDA as the model runs it: IEEE, not TF32 (exact_fp32)
    with torch.inference_mode(), exact_fp32(device, "fp32" if dtype == torch.float32 else ""):
        timed = [(_median_seconds(lambda: F.conv2d(fmap, w4, bias), device), "conv2d"),
                 (_median_seconds(lambda: torch.addmm(bias, a, wt), device), "addmm")]
        if own is not None:
            timed.append((_median_seconds(own, device), "native"))
    seconds, method = min(timed)
    gflops = 2 * rows * shape.k * shape.n / 1e9 / seconds
    return ShapeTiming(shape, seconds, gflops, method, rows)


def measure_limit(module: torch.nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype,
                  device: torch.device) -> Limit:
    """Time every distinct 1x1 product one forward of ``input_shape`` through ``module`` (the reference
    network) runs, in ``dtype`` on ``device``, on the current torch threads."""
    limit = Limit(str(dtype).removeprefix("torch."), str(device), tuple(input_shape))
    for shape in conv1x1_shapes(module, input_shape):
        limit.shapes.append(time_shape(shape, dtype, device))
    return limit
