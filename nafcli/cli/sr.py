"""``nafcli sr``: stereo super-resolution with NAFSSR: a pair, a folder of pairs, two folders, one image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as opt
from .restore import run_command

SR_HELP = (
    "Stereo super-resolution (NAFSSR, x2 or x4).\n\n"
    "nafcli sr LEFT RIGHT: a pair; writes LEFT_sr.png and RIGHT_sr.png.\n\n"
    "nafcli sr DIR: every pair in DIR (*_L.* with *_R.*, *_left.* with *_right.*, and sub-folders holding "
    "one scene's two views, e.g. lr0.png and lr1.png).\n\n"
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

InputsArg = Annotated[
    list[Path] | None,
    typer.Argument(metavar="INPUT...", help="LEFT RIGHT, a folder of pairs, or one IMAGE.", show_default=False),
]
ScaleOpt = Annotated[
    int | None,
    typer.Option("--scale", "-s", metavar="2|4", help="2 or 4: picks the x2/x4 model, or checks the given one.", show_default=False),
]
OutputDirOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="DIR", help="Output folder. Default: beside each input. With --left/--right: DIR/left, "
                 "DIR/right.", show_default=False),
]


def register(app: typer.Typer) -> None:
    @app.command(help=SR_HELP, cls=opt.HelpCommand)
    def sr(
        inputs: InputsArg = None,
        left: Annotated[Path | None, typer.Option("--left", metavar="DIR", help="Folder of left views (with --right).",
                                                  show_default=False)] = None,
        right: Annotated[Path | None, typer.Option("--right", metavar="DIR", help="Folder of right views (with --left).",
                                                   show_default=False)] = None,
        output: OutputDirOpt = None, model: opt.ModelOpt = None, weights: opt.WeightsOpt = None, scale: ScaleOpt = None,
        offline: opt.OfflineOpt = False, device: opt.DeviceOpt = "auto", tlc: opt.TlcOpt = None, tile: opt.TileOpt = None,
        overlap: opt.OverlapOpt = None, batch_size: opt.BatchSizeOpt = None, suffix: opt.SuffixOpt = None,
        name: opt.NameOpt = None,
        fmt: opt.FormatOpt = None, quality: opt.QualityOpt = None, overwrite: opt.OverwriteOpt = False,
        fail_fast: opt.FailFastOpt = False, quiet: opt.QuietOpt = False, as_json: opt.JsonOpt = False,
        max_pixels: opt.MaxPixelsOpt = "200M", precision: opt.PrecisionOpt = "fp32", compile: opt.CompileOpt = None,
        threads: opt.ThreadsOpt = 0, verbose: opt.VerboseOpt = False, shard: opt.ShardOpt = None,
        ray: opt.RayOpt = False, ray_address: opt.RayAddressOpt = None, ray_cpus_per_worker: opt.RayCpusOpt = None,
    ) -> None:
        if scale is not None and scale not in (2, 4):
            raise typer.BadParameter("NAFSSR models are x2 or x4", param_hint="--scale")
        run_command("super_resolve", inputs or [], locals(), left=left, right=right)
