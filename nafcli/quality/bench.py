"""``nafcli bench``: time the fast path against the reference path on the same input, in one process.

A benchmark takes a model (random weights for a registry architecture, ``nafcli.weights.load(...,
pretrained=False)``, or a weights file), makes one random input, and times

* the **reference** path: the authors' computation on the whole image in float32 (what their demo runs),
* the **fast** path: :class:`~nafcli.inference.restorer.Restorer` with the requested precision / tiling / compile,

reporting for each the median seconds, megapixels per second, peak memory (RSS high-water mark on the
CPU, reset between paths through ``/proc/self/clear_refs`` where Linux allows it; max allocated on CUDA),
achieved GFLOP/s from a counted FLOP total (convolutions and matrix products, counted once on the meta
device with :class:`torch.utils.flop_counter.FlopCounterMode`), the speed-up over the reference and the
PSNR of the fast output against the reference output.

Library code: no printing; the command in ``nafcli/cli/bench.py`` formats the result.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..archs import LoadedModel
from ..errors import UsageError
from ..inference.allocator import tune_for_tiles, tuned
from ..inference.restorer import Restorer, RunInfo
from ..inference.settings import check_precision, resolve_device
from ..inference.sizing import check_cut, parse_size
from .metrics import psnr

Progress = Callable[[str], None]


def count_flops(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs (2 x multiply-adds) of convolutions and matrix products for one forward of ``shape``.

    Counted on the meta device, so it costs no compute and no memory whatever the size.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta = _meta_copy(module)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta(torch.empty(shape, device="meta"))
    return int(counter.get_total_flops())


def _meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(module)
    return clone.to("meta")


# -- memory ---------------------------------------------------------------------------------------


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: "5" resets the RSS high-water mark of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_bytes(device: torch.device) -> int:
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


@dataclass
class PathResult:
    """One timed path."""

    name: str
    precision: str
    seconds: list[float] = field(default_factory=list)
    #: first call (includes compilation in compiled mode); reported, never hidden
    warmup_seconds: float = 0.0
    peak_memory_bytes: int = 0
    flops: int = 0
    speedup: float | None = None
    psnr_vs_reference: float | None = None
    max_abs_vs_reference: float | None = None
    #: the tile size the run used (0: whole image), from the run's RunInfo
    tile_size: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def megapixels_per_second(self, pixels: int) -> float:
        return pixels / 1e6 / self.median

    @property
    def gflops_per_second(self) -> float:
        return self.flops / 1e9 / self.median


@dataclass
class BenchResult:
    model: str
    architecture: str
    device: str
    threads: int
    input_shape: tuple[int, ...]
    tile: str
    paths: list[PathResult]
    #: whether the fast rows ran with nafcli.allocator's malloc settings (the reference row never does,
    #: unless the caller tuned the process before the run)
    allocator_tuned: bool = False

    @property
    def pixels(self) -> int:
        return self.input_shape[-1] * self.input_shape[-2]

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for p in self.paths:
            d = asdict(p)
            d["median_seconds"] = p.median
            d["megapixels_per_second"] = p.megapixels_per_second(self.pixels)
            d["gflops_per_second"] = p.gflops_per_second
            rows.append(d)
        return {
            "model": self.model,
            "architecture": self.architecture,
            "device": self.device,
            "threads": self.threads,
            "input_shape": list(self.input_shape),
            "tile": self.tile,
            "allocator_tuned": self.allocator_tuned,
            "paths": rows,
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(
    fn: Callable[[], torch.Tensor], device: torch.device, repeat: int
) -> tuple[float, list[float], int, torch.Tensor]:
    """Warm-up call, then ``repeat`` timed calls; returns warm-up s, times, peak bytes, last output."""
    _reset_peak(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return warm, times, _peak_bytes(device), out


def psnr_01(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (both clamped), as :func:`nafcli.quality.metrics.psnr` scores
    them on the 8-bit scale. Any shape (N x C x H x W network outputs): the error is over every sample."""
    if a.shape != b.shape:
        raise UsageError(f"cannot compare tensors of shapes {tuple(a.shape)} and {tuple(b.shape)}")

    def samples(t: torch.Tensor):  # noqa: ANN202 - one column of samples: metrics.psnr takes H x W [x C]
        return t.detach().cpu().double().clamp(0, 1).numpy().reshape(-1, 1) * 255.0

    return psnr(samples(a), samples(b))


def run_bench(
    model: LoadedModel,
    *,
    label: str = "",
    size: int = 1024,
    precisions: tuple[str, ...] = ("fp32",),
    device: str = "auto",
    tile: int | str = "auto",
    repeat: int = 3,
    reference: bool = True,
    reference_repeat: int = 1,
    compile: bool = False,
    tune_allocator: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> BenchResult:
    """Time the reference path and the fast path (one row per precision) on one random input.

    The input is a smooth random image (``size`` x ``size``; for a stereo model a pair of that size in
    low resolution), the same for every path. ``tune_allocator``: apply
    :func:`nafcli.allocator.tune_for_tiles` (as the command line does) after the reference row, so the reference runs with the C library's
    default allocator, as the authors' demo does, and the fast rows as ``nafcli`` runs them.
    """
    for name, value in (("--repeat", repeat), ("--reference-repeat", reference_repeat), ("--size", size)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, not {value}")
    dev = resolve_device(device)
    # what would fail after minutes of the reference row fails now
    for precision in precisions:
        check_precision(precision, dev)
    check_cut(model.tiling, parse_size(tile, "--tile"), None)
    say = progress or (lambda _msg: None)
    gen = torch.Generator().manual_seed(seed)
    channels = model.in_channels * model.views
    coarse = torch.rand((1, channels, max(size // 8, 1), max(size // 8, 1)), generator=gen)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp_(0, 1)
    shape = tuple(x.shape)
    flops = count_flops(model.module, shape)
    paths: list[PathResult] = []
    ref_out: torch.Tensor | None = None

    if reference:
        say("reference path (fp32, whole image)")
        module = model.module.to(dev).eval()
        xd = x.to(dev)

        def ref_fn() -> torch.Tensor:
            with torch.inference_mode():
                return module(xd)

        warm, times, peak, out = _time(ref_fn, dev, reference_repeat)
        ref_out = out.float().cpu()
        paths.append(PathResult("reference", "fp32", times, warm, peak, flops))
        del out

    if tune_allocator:
        tune_for_tiles(tile)

    for precision in precisions:
        say(f"fast path ({precision})")
        restorer = Restorer(model, device=dev, precision=precision, tile=tile, compile=compile)
        result = PathResult("fast" + (" compiled" if compile else ""), restorer.precision, flops=flops)

        infos: list[RunInfo] = []

        def fast_fn(r: Restorer = restorer, seen: list[RunInfo] = infos) -> torch.Tensor:
            out, info = r.run(x)
            seen.append(info)
            return out

        warm, times, peak, out = _time(fast_fn, dev, repeat)
        result.seconds, result.warmup_seconds, result.peak_memory_bytes = times, warm, peak
        result.tile_size = infos[-1].tile_size
        if ref_out is not None:
            result.psnr_vs_reference = psnr_01(out, ref_out)
            result.max_abs_vs_reference = (out - ref_out.clamp(0, 1)).abs().max().item()
        paths.append(result)
        del restorer

    if reference:
        base = paths[0].median
        for p in paths:
            p.speedup = base / p.median
    return BenchResult(
        model=label,
        architecture=model.spec.describe() + (" + TLC" if model.tlc else ""),
        device=str(dev),
        threads=torch.get_num_threads(),
        input_shape=shape,
        tile=str(tile),
        paths=paths,
        allocator_tuned=tuned(),
    )
