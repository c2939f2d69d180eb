"""``nafcli sr``: stereo super-resolution with NAFSSR: a pair, a folder of pairs, two folders, one image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import handle_errors
from .options import (
    DeviceOpt,
    FailFastOpt,
    FormatOpt,
    JsonOpt,
    MaxPixelsOpt,
    OverwriteOpt,
    PrecisionOpt,
    QualityOpt,
    QuietOpt,
    SuffixOpt,
    ThreadsOpt,
    VerboseOpt,
    WeightsOpt,
    parse_pixels,
)

SR_HELP = (
    "Stereo super-resolution (NAFSSR, x2 or x4).\n\n"
    "nafcli sr LEFT RIGHT: a pair; writes LEFT_sr.png and RIGHT_sr.png.\n\n"
    "nafcli sr DIR: every pair in DIR (*_L.* with *_R.*, *_left.* with *_right.*).\n\n"
    "nafcli sr --left A --right B: pairs the files of folders A and B by name.\n\n"
    "nafcli sr IMAGE: single-image SR; the image is fed as both views (the authors' suggestion for a "
    "mono input); writes IMAGE_sr.png.\n\n"
    "Files that cannot be paired are reported as failed with the reason, never dropped silently (exit "
    "code 1). As for denoise: existing outputs are skipped unless --overwrite, a failed pair does not "
    "stop the others (unless --fail-fast), --json prints one object per pair.\n\n"
    "The default model is nafssr-l-x4 (NAFSSR-L x4, from the Hugging Face hub). The other NAFSSR "
    "weights (T, S, B at x2 and x4; L at x2) are published only on the authors' Google Drive and "
    "Baidu links listed in https://github.com/megvii-research/NAFNet/blob/main/docs/StereoSR.md: "
    "download the .pth, then pass it with --weights FILE, or register it once with "
    "'nafcli models import NAFSSR-B_4x.pth' and use --model nafssr-b-x4 (ids: 'nafcli models list'). "
    "See docs/stereo.md.\n\n"
    "Large pairs run in full-width strips (--tile): the cross-view attention spans whole rows, so "
    "only rows are cut; --tile 0 runs the whole pair at once, as the authors do."
)


def _tile(value: str) -> int | str:
    v = value.strip().lower()
    if v == "auto":
        return "auto"
    try:
        n = int(v)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not 'auto' or a number of rows") from None
    if n < 0:
        raise typer.BadParameter("must be 0 (whole pair), a number of rows, or 'auto'")
    return n


def _load_restorer(
    model_id: str | None, weights: Path | None, scale: int | None, *, offline: bool = False, **kwargs
):
    """The model from --weights, or --model (default: nafssr-l-x<scale>), checked against --scale."""
    from ..errors import UsageError
    from ..pipeline import Restorer

    if weights is not None and model_id is not None:
        raise UsageError("give --model or --weights, not both")
    if weights is not None:
        from ..checkpoint import load_model

        loaded = load_model(weights)
        source = str(weights)
    else:
        model_id = model_id or _default_id(scale)
        id_scale = _registry_scale(model_id)
        if scale is not None and id_scale != scale:
            raise UsageError(f"--model {model_id} is a x{id_scale} model but --scale {scale} was given")
        loaded = _pretrained(model_id, offline=offline)
        source = model_id
    if not loaded.stereo:
        raise UsageError(
            f"{source}: holds {loaded.spec.describe()}, not a stereo SR model; "
            "use 'nafcli denoise' or 'nafcli deblur'"
        )
    if scale is not None and loaded.scale != scale:
        raise UsageError(f"{source}: is a x{loaded.scale} model but --scale {scale} was given")
    return Restorer(loaded, **kwargs)


def _registry_scale(model_id: str) -> int:
    """The scale of a registry model (UnknownModelError, with the closest ids, for an unknown one)."""
    from ..registry import load_registry

    return load_registry().get(model_id).scale


def _pretrained(model_id: str, *, offline: bool):
    """A registry model: downloaded and verified on first use, or imported by the user."""
    from ..weights import resolve
    from .models import download_progress

    with download_progress(model_id) as progress:
        return resolve(task="stereo-sr", model=model_id, offline=offline, progress=progress)


def register(app: typer.Typer) -> None:
    @app.command(help=SR_HELP)
    @handle_errors
    def sr(
        inputs: Annotated[
            list[Path] | None,
            typer.Argument(help="LEFT RIGHT, a folder of pairs, or one IMAGE.", show_default=False),
        ] = None,
        left: Annotated[
            Path | None,
            typer.Option("--left", help="Folder of left views (with --right).", show_default=False),
        ] = None,
        right: Annotated[
            Path | None,
            typer.Option("--right", help="Folder of right views (with --left).", show_default=False),
        ] = None,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o",
                help="Output folder. Default: beside each input. With --left/--right: DIR/left, DIR/right.",
                show_default=False,
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model", "-m",
                help="Model id (default nafssr-l-x4, or nafssr-l-x2 with --scale 2); other NAFSSR sizes "
                "after 'nafcli models import' (see above).",
                show_default=False,
            ),
        ] = None,
        weights: WeightsOpt = None,
        scale: Annotated[
            int | None,
            typer.Option("--scale", "-s", help="2 or 4: picks the x2/x4 model, or checks the given one.",
                         show_default=False),
        ] = None,
        offline: Annotated[
            bool, typer.Option("--offline", help="Use only the local weights cache (also HF_HUB_OFFLINE=1).")
        ] = False,
        device: DeviceOpt = "auto",
        tile: Annotated[
            str,
            typer.Option("--tile", help="Strip height in input rows (full-width strips); 0 = whole pair at "
                         "once; auto = from free memory."),
        ] = "auto",
        overlap: Annotated[
            int | None,
            typer.Option("--overlap", min=0, help="Input rows shared by neighbouring strips (default: "
                         "2x the model's receptive field, at most 92; see docs/stereo.md).",
                         show_default=False),
        ] = None,
        suffix: SuffixOpt = None,
        fmt: FormatOpt = None,
        quality: QualityOpt = None,
        overwrite: OverwriteOpt = False,
        fail_fast: FailFastOpt = False,
        quiet: QuietOpt = False,
        as_json: JsonOpt = False,
        max_pixels: MaxPixelsOpt = "200M",
        precision: PrecisionOpt = "fp32",
        threads: ThreadsOpt = 0,
        verbose: VerboseOpt = False,
    ) -> None:
        from ..batch import OutputSpec, run_jobs
        from ..sr_jobs import plan_sr, sr_job
        from .render import CliEvents, summary_line

        if scale is not None and scale not in (2, 4):
            raise typer.BadParameter("NAFSSR models are x2 or x4", param_hint="--scale")
        if fmt is not None and fmt.lower() not in ("png", "jpg", "jpeg", "webp", "tiff", "tif"):
            raise typer.BadParameter(f"{fmt!r}: use png, jpg, webp or tiff", param_hint="--format")
        tile_value = _tile(tile)
        limit = parse_pixels(max_pixels) or None
        spec = OutputSpec(task="sr", output=output, suffix=suffix, fmt=fmt.lower() if fmt else None,
                          overwrite=overwrite)
        pairs, singles, unmatched, subfolders = _collect(inputs or [], left, right, spec.effective_suffix)
        if not pairs and not singles and not unmatched:
            from ..errors import UsageError

            raise UsageError("no images found to super-resolve")
        jobs = plan_sr(pairs, singles, unmatched, spec, subfolders=subfolders)

        restorer = None
        if any(j.problem is None and j.skip is None for j in jobs):
            from ..allocator import tune_for_tiles
            from ..pipeline import resolve_device
            from ..speed import configure_threads

            dev = resolve_device(device)
            configure_threads(threads, dev)
            tune_for_tiles(tile_value)
            restorer = _load_restorer(model, weights, scale, offline=offline, device=dev, tile=tile_value,
                                      overlap=overlap, precision=precision)
        work = sr_job(restorer, max_pixels=limit, quality=quality)
        if verbose and restorer is not None:
            from .verbose import verbose_work

            work = verbose_work(work, restorer)
        label = str(weights) if weights is not None else (model or _default_id(scale))
        with CliEvents(quiet=quiet, as_json=as_json, model=label) as events:
            report = run_jobs(jobs, work, events=events,
                              fail_fast=fail_fast)
        print(summary_line(report), file=sys.stderr, flush=True)
        if report.exit_code:
            raise typer.Exit(report.exit_code)


def _default_id(scale: int | None) -> str:
    """The task's default (nafssr-l-x4), or with ``--scale`` the stereo-sr model of that scale: the
    registry's default if it has that scale, else nafssr-l-x<scale>, else the first of that scale."""
    from ..registry import load_registry

    reg = load_registry()
    default = reg.default_for("stereo-sr")
    if scale is None or default.scale == scale:
        return default.id
    same = [e.id for e in reg.for_task("stereo-sr") if e.scale == scale]
    wanted = f"nafssr-l-x{scale}"
    return wanted if wanted in same or not same else same[0]


def _collect(inputs: list[Path], left: Path | None, right: Path | None, suffix: str):
    """The command line -> (pairs, single images, unmatched files, outputs in left/right subfolders)."""
    from ..errors import ImageReadError, UsageError
    from ..pairing import Pair, pair_folder, pair_folders

    if (left is None) != (right is None):
        raise UsageError("--left and --right go together")
    if left is not None and right is not None:
        if inputs:
            raise UsageError("give input paths or --left/--right folders, not both")
        pairing = pair_folders(left, right, output_suffix=suffix)
        return pairing.pairs, [], pairing.unmatched, True
    if not inputs:
        raise UsageError("give LEFT RIGHT, a folder, an image, or --left DIR --right DIR (see --help)")
    if len(inputs) == 1:
        src = inputs[0]
        if src.is_dir():
            pairing = pair_folder(src, output_suffix=suffix)
            return pairing.pairs, [], pairing.unmatched, False
        if not src.exists():
            raise ImageReadError(f"{src}: no such file")
        return [], [src], [], False
    if len(inputs) == 2:
        for p in inputs:
            if p.is_dir():
                raise UsageError(
                    f"{p}: is a folder; for two folders use --left {inputs[0]} --right {inputs[1]}"
                )
            if not p.exists():
                raise ImageReadError(f"{p}: no such file")
        return [Pair(inputs[0], inputs[1])], [], [], False
    raise UsageError(f"{len(inputs)} inputs given: expected LEFT RIGHT, one folder, or one image")
