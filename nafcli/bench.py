"""``nafcli bench``: time the fast path against the reference path on the same input, in one process.

A benchmark builds a model (random weights for an official architecture, or a weights file), makes one
random input, and times

* the **reference** path: the authors' computation on the whole image in float32 (what their demo runs),
* the **fast** path: :class:`~nafcli.pipeline.Restorer` with the requested precision / tiling / compile,

reporting for each the median seconds, megapixels per second, peak memory (RSS high-water mark on the
CPU, reset between paths through ``/proc/self/clear_refs`` where Linux allows it; max allocated on CUDA),
achieved GFLOP/s from a counted FLOP total (convolutions and matrix products, counted once on the meta
device with :class:`torch.utils.flop_counter.FlopCounterMode`), the speed-up over the reference and the
PSNR of the fast output against the reference output.

Library code: no printing; the command in ``nafcli/cli/bench.py`` formats the result.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .allocator import tune_for_tiles, tuned
from .errors import UsageError
from .model import ArchSpec, LoadedModel, spec_from_config, wrap

#: The official architectures (configs as in the authors' option files; TLC as they evaluate them).
OFFICIAL: dict[str, tuple[str, dict[str, Any], bool]] = {
    "nafnet-sidd-width32": (
        "nafnet",
        {"width": 32, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]},
        False,
    ),
    "nafnet-sidd-width64": (
        "nafnet",
        {"width": 64, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]},
        False,
    ),
    "nafnet-gopro-width32": (
        "nafnet",
        {"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
        True,
    ),
    "nafnet-gopro-width64": (
        "nafnet",
        {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
        True,
    ),
    "nafnet-reds-width64": (
        "nafnet",
        {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
        True,
    ),
    **{
        f"nafssr-{size}-x{scale}": ("nafssr", {"up_scale": scale, "width": width, "num_blks": blocks}, True)
        for size, width, blocks in (("t", 48, 16), ("s", 64, 32), ("b", 96, 64), ("l", 128, 128))
        for scale in (2, 4)
    },
}

Progress = Callable[[str], None]


def random_model(spec: ArchSpec, *, tlc: bool, seed: int = 0) -> LoadedModel:
    """A model of ``spec`` with random weights that exercise every path.

    The default initialisation leaves beta/gamma at zero (every block an identity); here they, and the
    LayerNorm affines, get random values of the size trained models have, so timings and precision
    figures are those of a real network.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the default initialisation draws from the global generator
        module = spec.build(tlc=tlc)
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("beta", "gamma"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            elif ".norm" in name and leaf == "weight":
                p.copy_(1 + torch.randn(p.shape, generator=gen) * 0.2)
            elif ".norm" in name and leaf == "bias":
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return wrap(module, spec, tlc=tlc, source="random weights")


def bench_model(
    *,
    model_id: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    arch_config: tuple[str, dict[str, Any]] | None = None,
    tlc: bool | None = None,
    seed: int = 0,
) -> tuple[LoadedModel, str]:
    """The model to benchmark and a label: an official id, a weights file or an explicit config."""
    given = sum(x is not None for x in (model_id, weights, arch_config))
    if given > 1:
        raise UsageError("give only one of --model, --weights, --arch-config")
    if weights is not None:
        from .checkpoint import load_model

        return load_model(weights, tlc=tlc), str(weights)
    if arch_config is not None:
        arch, config = arch_config
        try:
            spec = spec_from_config(arch, config)
        except ValueError as e:
            raise UsageError(f"--arch-config: {e}") from None
        use_tlc = bool(tlc) if tlc is not None else spec.arch == "nafssr"
        return random_model(spec, tlc=use_tlc, seed=seed), spec.describe()
    name = model_id or "nafnet-sidd-width32"
    spec, default_tlc = _registry_spec(name)
    return random_model(spec, tlc=default_tlc if tlc is None else tlc, seed=seed), name


def _registry_spec(name: str) -> tuple[ArchSpec, bool]:
    """Architecture and TLC default of a model id: the registry (weights.toml), else the built-in table
    of the official configurations (so the benchmark works without the registry file)."""
    try:
        from .registry import load_registry

        entry = load_registry().get(name)
        return entry.spec, entry.tlc
    except Exception:  # noqa: BLE001 - any registry trouble: fall back to the built-in table
        pass
    if name not in OFFICIAL:
        raise UsageError(f"unknown model {name!r} (known: {', '.join(OFFICIAL)})")
    arch, config, default_tlc = OFFICIAL[name]
    return spec_from_config(arch, config), default_tlc


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
    #: the tile size the run used (0: whole image), from Restorer.last_run
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


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of ``a`` against ``b`` for images in [0, 1] (both clamped)."""
    mse = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


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
    from .pipeline import Restorer, resolve_device

    if repeat < 1:
        raise UsageError("--repeat must be at least 1")
    dev = resolve_device(device)
    say = progress or (lambda _msg: None)
    gen = torch.Generator().manual_seed(seed)
    channels = model.in_channels * (2 if model.stereo else 1)
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

        def fast_fn(r: Restorer = restorer) -> torch.Tensor:
            return r.run_tensor(x)

        warm, times, peak, out = _time(fast_fn, dev, repeat)
        result.seconds, result.warmup_seconds, result.peak_memory_bytes = times, warm, peak
        result.tile_size = int(getattr(restorer.last_run, "tile_size", 0) or 0)
        if ref_out is not None:
            result.psnr_vs_reference = psnr(out, ref_out)
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
