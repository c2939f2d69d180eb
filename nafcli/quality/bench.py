"""``nafcli bench``: time the fast path against the reference path on the same input, in one process.

A benchmark takes a model (random weights for a registry architecture, ``nafcli.weights.load(...,
pretrained=False)``, or a weights file), makes one random input, and times

* the **reference** path: the authors' computation on the whole image in float32 (what their demo runs),
* the **fast** path: :class:`~nafcli.inference.restorer.Restorer` with the requested precision / tiling / compile,

reporting for each the median seconds, megapixels per second, peak memory (RSS high-water mark on the
CPU, reset between paths through ``/proc/self/clear_refs`` where Linux allows it; max allocated on CUDA),
achieved GFLOP/s from a counted FLOP total (convolutions and matrix products but the channel attention's,
counted once for the whole image on the meta device, :func:`nafcli.quality.limit.model_flops`), the
speed-up over the reference and the PSNR of the fast output against the reference output.

And the machine's limit, measured in the same run (:mod:`nafcli.quality.limit`): the device's throughput
on the model's own 1x1-convolution products at the tile actually run, in the row's dtype. Each row gets
the share of that limit it reaches (its GFLOP/s over the limit's: the elementwise passes, the depthwise
convolutions and the tiles' overlap pixels are what keep it below 100 %) and the MP/s that share implies
at 100 %. Rows are one per *resolved* precision: ``-p fp32 -p auto`` where auto is fp32 is one row, marked
as auto's; what ``auto`` picked, and why, is part of the result.

Library code: no printing; the command in ``nafcli/cli/bench.py`` formats the result.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..archs import LoadedModel, native
from ..errors import UsageError
from ..inference.allocator import tune_for_tiles, tuned
from ..inference.cut_options import check_cut, parse_size
from ..inference.restorer import Restorer, RunInfo
from ..inference.settings import (
    DTYPES,
    check_precision,
    choose_precision,
    exact_fp32,
    native_bf16,
    native_fp16,
    resolve_device,
)
from .limit import Limit, measure_limit
from .measure import count_flops, time_calls
from .metrics import psnr

Progress = Callable[[str], None]


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
    #: the precisions asked for that resolved to this row (``["fp32", "auto"]``)
    requested: list[str] = field(default_factory=list)
    #: whether ``auto`` resolved to this row
    auto: bool = False
    #: the network's input per forward (batch x C x H x W of a tile, or the whole image)
    network_input: list[int] = field(default_factory=list)
    #: the device's measured throughput on the model's 1x1 products at that input, in this row's dtype
    #: (None: not measured, e.g. a dtype the device only emulates): the median of the measurements right
    #: after each timed run (``limit_samples``)
    limit_gflops_per_second: float | None = None
    #: the last measurement over the first (1.0: the machine's speed did not drift during the row; None
    #: with a single measurement)
    limit_drift: float | None = None
    #: every measurement of the limit for this row, in the order taken (GFLOP/s)
    limit_samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def megapixels_per_second(self, pixels: int) -> float:
        return pixels / 1e6 / self.median

    @property
    def gflops_per_second(self) -> float:
        return self.flops / 1e9 / self.median

    @property
    def share_of_limit(self) -> float | None:
        """The row's GFLOP/s over the limit's (1.0: as fast as the model's products alone can run)."""
        if not self.limit_gflops_per_second:
            return None
        return self.gflops_per_second / self.limit_gflops_per_second

    def megapixels_per_second_at_limit(self, pixels: int) -> float | None:
        """The MP/s the row would reach at 100 % of the limit."""
        share = self.share_of_limit
        return None if not share else self.megapixels_per_second(pixels) / share

    @property
    def label(self) -> str:
        """``fast, tile 560`` and so on, as the table shows it."""
        return self.name + (f", tile {self.tile_size}" if self.tile_size else "")

    @property
    def precision_label(self) -> str:
        """``bf16 (auto)`` for the row auto resolved to."""
        return self.precision + (" (auto)" if self.auto else "")


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
    #: what ``--precision auto`` resolves to on this device, and why
    auto_precision: str = ""
    auto_reason: str = ""
    #: one line each (e.g. bf16 on a CPU that only emulates it)
    warnings: list[str] = field(default_factory=list)
    #: the limits measured (one per dtype and network input)
    limits: list[Limit] = field(default_factory=list)
    #: whether the fast fp32 rows on the CPU could use the native NAFBlock kernels, and what they are
    #: (or why not): ``{"available": bool, "detail": str}``; empty on other devices
    native: dict[str, Any] = field(default_factory=dict)

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
            d["share_of_limit"] = p.share_of_limit
            d["megapixels_per_second_at_limit"] = p.megapixels_per_second_at_limit(self.pixels)
            rows.append(d)
        return {
            "model": self.model,
            "architecture": self.architecture,
            "device": self.device,
            "threads": self.threads,
            "input_shape": list(self.input_shape),
            "tile": self.tile,
            "allocator_tuned": self.allocator_tuned,
            "auto": {"precision": self.auto_precision, "reason": self.auto_reason},
            "warnings": self.warnings,
            "limits": [lim.to_dict() for lim in self.limits],
            "native": self.native,
            "paths": rows,
        }


def psnr_01(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (both clamped), as :func:`nafcli.quality.metrics.psnr` scores
    them on the 8-bit scale. Any shape (N x C x H x W network outputs): the error is over every sample."""
    if a.shape != b.shape:
        raise UsageError(f"cannot compare tensors of shapes {tuple(a.shape)} and {tuple(b.shape)}")

    def samples(t: torch.Tensor):  # noqa: ANN202 - one column of samples: metrics.psnr takes H x W [x C]
        return t.detach().cpu().double().clamp(0, 1).numpy().reshape(-1, 1) * 255.0

    return psnr(samples(a), samples(b))


def resolve_rows(precisions: tuple[str, ...], device: torch.device) -> list[tuple[str, list[str]]]:
    """The rows to time: one per resolved precision, in the order first asked, with the precisions that
    resolved to it (``("fp32", "auto")`` on a CPU without native bf16 is one row, ``[("fp32", ["fp32",
    "auto"])]``)."""
    rows: dict[str, list[str]] = {}
    for requested in precisions:
        resolved = choose_precision(requested, device, measure=False).precision
        asked = rows.setdefault(resolved, [])
        if requested not in asked:
            asked.append(requested)
    return list(rows.items())


def _limit_dtype_native(precision: str, device: torch.device) -> bool:
    """Whether a limit is measured for ``precision``: fp32 always, bf16/fp16 where the device has them
    natively (an emulated product's speed is no limit worth reaching)."""
    if precision == "bf16":
        return native_bf16(device)
    if precision == "fp16":
        return native_fp16(device)
    return True


def smooth_random_image(channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """The benchmark input: 1 x ``channels`` x ``size`` x ``size`` in [0, 1], smooth like a photo (random
    values on a grid 8x coarser, interpolated) with a little noise, the same for a given ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, channels, max(size // 8, 1), max(size // 8, 1)), generator=gen)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp_(0, 1)


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
    compile: bool | str = False,
    tune_allocator: bool = False,
    limit: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> BenchResult:
    """Time the reference path and the fast path (one row per resolved precision) on one random input.

    The input is a smooth random image (``size`` x ``size``; for a stereo model a pair of that size in
    low resolution), the same for every path. ``tune_allocator``: apply
    :func:`nafcli.allocator.tune_for_tiles` (as the command line does) after the reference row, so the
    reference runs with the C library's default allocator, as the authors' demo does, and the fast rows as
    ``nafcli`` runs them. ``limit``: measure the device's throughput on the model's 1x1 products for each
    row (:mod:`nafcli.quality.limit`) at the network input the row used, right after each of its timed runs,
    and take the median (``limit_drift``: the last over the first). Peak memory is then the first timed
    run's (the warm-up's compilation and the limit's buffers are not the model's).
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
    rows = resolve_rows(precisions, dev)
    auto = choose_precision("auto", dev)
    warnings = [w for p, _ in rows if (w := choose_precision(p, dev).warning)]
    channels = model.in_channels * model.views
    x = smooth_random_image(channels, size, seed)
    shape = tuple(x.shape)
    flops = count_flops(model.module, shape)
    paths: list[PathResult] = []
    limits: list[Limit] = []
    ref_out: torch.Tensor | None = None

    def limit_for(precision: str, net_input: tuple[int, ...]) -> Limit | None:
        if not limit or not _limit_dtype_native(precision, dev):
            return None
        say(f"limit: {precision} 1x1 products of a {'x'.join(map(str, net_input))} input")
        measured = measure_limit(model.module, net_input, DTYPES[precision], dev)
        limits.append(measured)
        return measured

    def sample_limit(row: PathResult, precision: str) -> None:
        """One measurement of the row's limit (untimed, right after one of its timed runs)."""
        if (measured := limit_for(precision, tuple(row.network_input))) is not None:
            row.limit_samples.append(measured.gflops_per_second)

    def settle_limit(row: PathResult) -> None:
        """The row's limit: the median of its measurements. A 2-vCPU VM's speed moves by 10-30 % from one
        minute to the next, and a measurement before the row and one after it alone (as until 2026-12-03)
        put one model's share anywhere in 79-98 % of the same code; one after each timed run follows the
        machine through the row. None measured before the first run: the limit's buffers stay in a heap
        tuned to keep freed memory, and the run's peak memory would count them."""
        if not row.limit_samples:
            return
        row.limit_gflops_per_second = statistics.median(row.limit_samples)
        if len(row.limit_samples) > 1:
            row.limit_drift = row.limit_samples[-1] / row.limit_samples[0]

    if reference:
        say("reference path (fp32, whole image)")
        module = model.module.to(dev).eval()
        xd = x.to(dev)

        def ref_fn() -> torch.Tensor:
            with torch.inference_mode(), exact_fp32(dev, "fp32"):
                return module(xd)

        row = PathResult("reference", "fp32", flops=flops, network_input=list(shape))
        warm, times, peak, out = time_calls(ref_fn, dev, reference_repeat,
                                            after_each=lambda: sample_limit(row, "fp32"))
        ref_out = out.float().cpu()
        del out
        row.seconds, row.warmup_seconds, row.peak_memory_bytes = times, warm, peak
        settle_limit(row)
        paths.append(row)

    if tune_allocator:
        tune_for_tiles(tile)

    for precision, requested in rows:
        say(f"fast path ({precision}{', auto' if 'auto' in requested else ''})")
        restorer = Restorer(model, device=dev, precision=precision, tile=tile, compile=compile)
        result = PathResult("fast" + ("+compiled" if restorer.compiled else ""), restorer.precision, flops=flops,
                            requested=requested, auto="auto" in requested)

        infos: list[RunInfo] = []

        def fast_fn(r: Restorer = restorer, seen: list[RunInfo] = infos) -> torch.Tensor:
            out, info = r.run(x)
            seen.append(info)
            return out

        def after_warmup(row: PathResult = result, seen: list[RunInfo] = infos) -> None:
            info = seen[-1]
            row.network_input = [info.batch_size, channels, *info.tile_shape]

        warm, times, peak, out = time_calls(fast_fn, dev, repeat, after_warmup,
                                            lambda row=result, p=precision: sample_limit(row, p))
        result.seconds, result.warmup_seconds, result.peak_memory_bytes = times, warm, peak
        info = infos[-1]
        result.tile_size = info.tile_size
        result.name = "fast" + ("+compiled" if info.path.endswith("+compiled") else "")
        if ref_out is not None:
            result.psnr_vs_reference = psnr_01(out, ref_out)
            result.max_abs_vs_reference = (out - ref_out.clamp(0, 1)).abs().max().item()
        del out, restorer
        settle_limit(result)
        paths.append(result)

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
        auto_precision=auto.precision,
        auto_reason=auto.reason,
        warnings=warnings,
        limits=limits,
        # only where a fast fp32 row ran on the CPU: a bf16-only run should not build the kernels to report them
        native=native_status() if dev.type == "cpu" and any(
            p.precision == "fp32" and p.name.startswith("fast") for p in paths) else {},
    )


def native_status() -> dict[str, Any]:
    """The native NAFBlock kernels as the fast rows found them: available (with the vector width, the
    library, and the map size they start at) or why not."""
    lib = native.load()
    if isinstance(lib, native.Library):
        return {"available": True,
                "detail": f"{lib.describe()}: fp32 blocks of up to {native.whole_block_limit()} channels whole, "
                          "wider ones with oneDNN's products"}
    return {"available": False, "detail": str(lib)}
