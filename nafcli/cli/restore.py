"""``nafcli denoise`` and ``nafcli deblur``: any number of images, folders or patterns through NAFNet.

Both commands collect their options into a :class:`RestoreSettings` and call :func:`run_restore`, so a new
option (``--tile``, ``--precision``, ``--model``) is one field, one parameter in each command, and one use
in ``run_restore``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from .errors import handle_errors
from .options import (
    BatchOutputOpt,
    BatchSizeOpt,
    CompileOpt,
    DeviceOpt,
    FailFastOpt,
    FormatOpt,
    InputsArg,
    JsonOpt,
    MaxPixelsOpt,
    ModelOpt,
    OfflineOpt,
    OverlapOpt,
    OverwriteOpt,
    PrecisionOpt,
    QualityOpt,
    QuietOpt,
    RecursiveOpt,
    ReferenceOpt,
    SuffixOpt,
    ThreadsOpt,
    TileOpt,
    TlcDeblurOpt,
    TlcDenoiseOpt,
    VerboseOpt,
    WeightsOpt,
    parse_pixels,
)

FORMATS = ("png", "jpg", "jpeg", "webp", "tiff", "tif")


@dataclass
class RestoreSettings:
    """Everything a denoise/deblur run needs from the command line."""

    task: str
    inputs: list[str]
    weights: Path | None = None
    output: Path | None = None
    device: str = "auto"
    tlc: bool = False
    recursive: bool = False
    suffix: str | None = None
    fmt: str | None = None
    quality: int | None = None
    overwrite: bool = False
    fail_fast: bool = False
    quiet: bool = False
    as_json: bool = False
    max_pixels: str = "200M"
    model: str | None = None
    offline: bool = False
    precision: str = "fp32"
    compile: bool = False
    threads: int = 0
    reference: bool = False
    tile: str = "auto"
    overlap: int | None = None
    batch_size: str = "auto"
    verbose: bool = False


def run_restore(s: RestoreSettings) -> None:
    """Discover, plan, load the model (only when there is work), run, report; exits with the batch's code."""
    from ..batch import OutputSpec, discover, plan, restore_job, run_jobs
    from ..errors import UsageError
    from .render import CliEvents, summary_line

    if s.fmt is not None and s.fmt.lower() not in FORMATS:
        raise typer.BadParameter(f"{s.fmt!r}: use png, jpg, webp or tiff", param_hint="--format")
    max_pixels = parse_pixels(s.max_pixels)
    spec = OutputSpec(task=s.task, output=s.output, suffix=s.suffix,
                      fmt=s.fmt.lower() if s.fmt else None, overwrite=s.overwrite)
    exclude = [s.output] if s.output is not None and s.output.is_dir() else []
    sources = discover(s.inputs, recursive=s.recursive, exclude_suffix=spec.effective_suffix or None,
                       exclude_dirs=exclude)
    if not sources:
        raise UsageError("no images found in " + ", ".join(s.inputs))
    jobs = plan(sources, spec)

    from ..pipeline import Restorer

    restorer = None
    model_name = str(s.weights) if s.weights is not None else (s.model or f"default {s.task} model")
    if any(j.problem is None and j.skip is None for j in jobs):
        from ..weights import resolve
        from .models import download_progress

        with download_progress(s.model or f"{s.task} model") as progress:
            loaded = resolve(task=s.task, model=s.model, weights=s.weights, tlc=s.tlc, offline=s.offline,
                             progress=progress)
        if loaded.stereo:
            raise UsageError(f"{loaded.source}: holds a stereo SR model ({loaded.spec.describe()}); use 'nafcli sr'")
        from ..allocator import tune_for_tiles
        from ..pipeline import resolve_device
        from ..speed import configure_threads

        dev = resolve_device(s.device)
        configure_threads(s.threads, dev)
        tune_for_tiles(s.tile)
        restorer = Restorer(loaded, device=dev, precision=s.precision, compile=s.compile, fast=not s.reference,
                            tile=s.tile, overlap=s.overlap, batch_size=s.batch_size)
        model_name = loaded.model_id or loaded.source
    model = model_name
    work = restore_job(restorer, max_pixels=max_pixels or None, quality=s.quality)
    if s.verbose and restorer is not None:
        from .verbose import verbose_work

        work = verbose_work(work, restorer)
    with CliEvents(quiet=s.quiet, as_json=s.as_json, model=model) as events:
        report = run_jobs(
            jobs,
            work,
            events=events,
            fail_fast=s.fail_fast,
        )
    if restorer is not None and restorer.last_run.compile_seconds:
        print(f"compiled in {restorer.last_run.compile_seconds:.1f} s (first call per input shape)",
              file=sys.stderr, flush=True)
    print(summary_line(report), file=sys.stderr, flush=True)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    @app.command(help="Remove noise from photos (NAFNet trained on SIDD).")
    @handle_errors
    def denoise(
        inputs: InputsArg,
        weights: WeightsOpt = None,
        model: ModelOpt = None,
        offline: OfflineOpt = False,
        output: BatchOutputOpt = None,
        device: DeviceOpt = "auto",
        tlc: TlcDenoiseOpt = False,
        recursive: RecursiveOpt = False,
        suffix: SuffixOpt = None,
        fmt: FormatOpt = None,
        quality: QualityOpt = None,
        overwrite: OverwriteOpt = False,
        fail_fast: FailFastOpt = False,
        quiet: QuietOpt = False,
        as_json: JsonOpt = False,
        max_pixels: MaxPixelsOpt = "200M",
        precision: PrecisionOpt = "fp32",
        compile: CompileOpt = False,
        threads: ThreadsOpt = 0,
        reference: ReferenceOpt = False,
        tile: TileOpt = "auto",
        overlap: OverlapOpt = None,
        batch_size: BatchSizeOpt = "auto",
        verbose: VerboseOpt = False,
    ) -> None:
        # The parameters are named as RestoreSettings fields: hand them over as they are.
        run_restore(RestoreSettings(task="denoise", **locals()))

    @app.command(help="Remove motion blur from photos (NAFNet trained on GoPro or REDS, with TLC).")
    @handle_errors
    def deblur(
        inputs: InputsArg,
        weights: WeightsOpt = None,
        model: ModelOpt = None,
        offline: OfflineOpt = False,
        output: BatchOutputOpt = None,
        device: DeviceOpt = "auto",
        tlc: TlcDeblurOpt = True,
        recursive: RecursiveOpt = False,
        suffix: SuffixOpt = None,
        fmt: FormatOpt = None,
        quality: QualityOpt = None,
        overwrite: OverwriteOpt = False,
        fail_fast: FailFastOpt = False,
        quiet: QuietOpt = False,
        as_json: JsonOpt = False,
        max_pixels: MaxPixelsOpt = "200M",
        precision: PrecisionOpt = "fp32",
        compile: CompileOpt = False,
        threads: ThreadsOpt = 0,
        reference: ReferenceOpt = False,
        tile: TileOpt = "auto",
        overlap: OverlapOpt = None,
        batch_size: BatchSizeOpt = "auto",
        verbose: VerboseOpt = False,
    ) -> None:
        run_restore(RestoreSettings(task="deblur", **locals()))
