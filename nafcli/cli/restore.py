"""``nafcli denoise`` and ``nafcli deblur``: one image through a NAFNet model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import handle_errors
from .options import BatchSizeOpt, DeviceOpt, OutputOpt, OverlapOpt, TileOpt, VerboseOpt, WeightsOpt

ImageArg = Annotated[Path, typer.Argument(help="The image to restore.", show_default=False)]


def _restore(
    task: str, image: Path, weights: Path | None, output: Path | None, device: str, tlc: bool, **tiling
) -> None:
    from ..batch import restore_file
    from ..errors import UsageError
    from ..pipeline import Restorer

    if weights is None:
        raise UsageError("--weights FILE is required (pretrained downloads are not available yet)")
    verbose = tiling.pop("verbose", False)
    restorer = Restorer.from_file(weights, tlc=tlc, device=device, **tiling)
    if restorer.model.stereo:
        raise UsageError(f"{weights}: holds a stereo SR model ({restorer.model.spec.describe()}); use 'nafcli sr'")
    written = restore_file(restorer, image, output, task=task)
    if verbose:
        from .verbose import print_run

        print_run(str(image), restorer.last_run)
    print(written)


def register(app: typer.Typer) -> None:
    @app.command(help="Remove noise from a photo (NAFNet trained on SIDD).")
    @handle_errors
    def denoise(
        image: ImageArg,
        weights: WeightsOpt = None,
        output: OutputOpt = None,
        device: DeviceOpt = "auto",
        tlc: Annotated[
            bool, typer.Option("--tlc/--no-tlc", help="Test-time local statistics (TLC) in the channel attention.")
        ] = False,
        tile: TileOpt = "auto",
        overlap: OverlapOpt = None,
        batch_size: BatchSizeOpt = "auto",
        verbose: VerboseOpt = False,
    ) -> None:
        _restore("denoise", image, weights, output, device, tlc,
                 tile=tile, overlap=overlap, batch_size=batch_size, verbose=verbose)

    @app.command(help="Remove motion blur from a photo (NAFNet trained on GoPro or REDS, with TLC).")
    @handle_errors
    def deblur(
        image: ImageArg,
        weights: WeightsOpt = None,
        output: OutputOpt = None,
        device: DeviceOpt = "auto",
        tlc: Annotated[
            bool,
            typer.Option(
                "--tlc/--no-tlc",
                help="Test-time local statistics (TLC): the authors' setting for deblurring, worth ~0.6 dB.",
            ),
        ] = True,
        tile: TileOpt = "auto",
        overlap: OverlapOpt = None,
        batch_size: BatchSizeOpt = "auto",
        verbose: VerboseOpt = False,
    ) -> None:
        _restore("deblur", image, weights, output, device, tlc,
                 tile=tile, overlap=overlap, batch_size=batch_size, verbose=verbose)
