"""The tables of ``nafcli bench`` and ``nafcli eval`` (and eval's CSV): the renderers of results that are
a table rather than a stream of events (those are in :mod:`.render`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..imaging.files import atomic_write_bytes

if TYPE_CHECKING:
    from ..quality.bench import BenchResult


# --- nafcli bench ------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _pct(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.0f} %"


def render_bench(result: BenchResult) -> None:
    """The result as a table on stdout; notes (auto's choice, the allocator, what the limit is) on stderr."""
    from rich.console import Console
    from rich.table import Table

    shape = "x".join(map(str, result.input_shape))
    table = Table(
        title=f"{result.model}: {result.architecture}, input {shape}, {result.device}, "
        f"{result.threads} threads, tile {result.tile}"
    )
    columns = ("path", "precision", "median s", "MP/s", "GFLOP/s", "limit GFLOP/s", "of limit", "MP/s at limit",
               "peak mem", "vs reference", "PSNR dB", "warm-up s")
    for col in columns:
        table.add_column(col, justify="left" if col in ("path", "precision") else "right")
    for p in result.paths:
        at_limit = p.megapixels_per_second_at_limit(result.pixels)
        table.add_row(
            p.label,
            p.precision_label,
            f"{p.median:.3f}",
            f"{p.megapixels_per_second(result.pixels):.3f}",
            f"{p.gflops_per_second:.1f}",
            "" if p.limit_gflops_per_second is None else f"{p.limit_gflops_per_second:.1f}",
            _pct(p.share_of_limit),
            "" if at_limit is None else f"{at_limit:.3f}",
            _mib(p.peak_memory_bytes),
            "" if p.speedup is None else f"{p.speedup:.2f}x",
            "" if p.psnr_vs_reference is None else f"{p.psnr_vs_reference:.1f}",
            f"{p.warmup_seconds:.2f}",
        )
    Console(file=sys.stdout, width=190).print(table)
    print(f"auto: {result.auto_precision} ({result.auto_reason})", file=sys.stderr)
    if any(p.limit_gflops_per_second for p in result.paths):
        print("limit: this device's throughput on the model's own 1x1-convolution products at the input each "
              "row ran, in its dtype, measured after each timed run (the median); "
              "'of limit': the row's GFLOP/s over it", file=sys.stderr)
    for p in result.paths:
        low, high = (min(p.limit_samples), max(p.limit_samples)) if p.limit_samples else (0.0, 0.0)
        if low > 0 and high / low > 1.1:
            print(f"note: {p.label} {p.precision}: the limit's {len(p.limit_samples)} measurements ranged over "
                  f"{low:.0f}-{high:.0f} GFLOP/s (the machine's speed moved during the row; rerun on a quiet "
                  "machine)", file=sys.stderr)
    if result.native:
        state = "on" if result.native["available"] else "off"
        print(f"native NAFBlock kernels: {state}: {result.native['detail']}", file=sys.stderr)
    if result.allocator_tuned:
        print("fast rows: glibc malloc keeps freed blocks for reuse, as nafcli runs (reference row: the "
              "default allocator; NAFCLI_MALLOC_TUNING=0 for both)", file=sys.stderr)


# --- nafcli eval -------------------------------------------------------------------------------------


def score(x: float, digits: int) -> str:
    """A PSNR or SSIM with ``digits`` decimals (``inf`` for identical images)."""
    return "inf" if x == float("inf") else f"{x:.{digits}f}"


def print_eval(result) -> None:  # noqa: ANN001 - EvalResult
    """Per-image scores and their mean; after a model run, the inputs' own scores beside them (the
    baseline: what the model added is the difference)."""
    width = max([len("image")] + [len(it.name) for it in result.items] + [len(f"mean ({len(result.items)})")])
    base = result.baseline_method if result.baseline is not None else None
    head = f"{'image':<{width}}  {'PSNR (dB)':>10}  {'SSIM':>7}"
    if base:
        head += f"  {base + ' PSNR':>12}  {base + ' SSIM':>12}"
    print(head)

    def row(label: str, scores, baseline) -> str:  # noqa: ANN001 - Scores, Scores | None
        text = f"{label:<{width}}  {score(scores.psnr, 4):>10}  {score(scores.ssim, 4):>7}"
        if base and baseline is not None:
            text += f"  {score(baseline.psnr, 4):>12}  {score(baseline.ssim, 4):>12}"
        return text

    for it in result.items:
        print(row(it.name, it, it.baseline))
    print(row(f"mean ({len(result.items)})", result.mean, result.baseline))
    if base:
        gain = result.mean.psnr - result.baseline.psnr
        how = "the input as it is" if base == "input" else "the input upscaled bicubic"
        print(f"{base}: {how} against the target; the model adds {score(gain, 2)} dB")


def write_eval_csv(path: Path, result) -> None:  # noqa: ANN001 - EvalResult
    """name, source(s), target(s), psnr, ssim per image; a last row ``mean`` with the averages."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    base = result.baseline is not None
    w.writerow(["name", "source", "target", "psnr", "ssim"] + (["input_psnr", "input_ssim"] if base else []))

    def extra(b) -> list[str]:  # noqa: ANN001 - Scores | None
        return ([score(b.psnr, 6), score(b.ssim, 6)] if b is not None else ["", ""]) if base else []

    for it in result.items:
        w.writerow([it.name, ";".join(map(str, it.source)), ";".join(map(str, it.target)),
                    score(it.psnr, 6), score(it.ssim, 6), *extra(it.baseline)])
    w.writerow(["mean", "", "", score(result.mean.psnr, 6), score(result.mean.ssim, 6), *extra(result.baseline)])
    atomic_write_bytes(path, buf.getvalue().encode())
