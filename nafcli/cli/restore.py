"""``nafcli denoise`` and ``nafcli deblur``: one image through a NAFNet model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import handle_errors
from .options import DeviceOpt, OutputOpt, WeightsOpt

ImageArg = Annotated[Path, typer.Argument(help="The image to restore.", show_default=False)]


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="ID", help="A pretrained model id (default: the task's default; "
                 "see 'nafcli models list'). --weights wins.", show_default=False),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Use only the local cache (also HF_HUB_OFFLINE=1); never download.")
]


def _restore(
    task: str, image: Path, weights: Path | None, output: Path | None, device: str, tlc: bool,
    model: str | None = None, offline: bool = False,
) -> None:  # fmt: skip
    from ..batch import restore_file
    from ..errors import UsageError
    from ..pipeline import Restorer
    from ..weights import resolve
    from .models import download_progress

    with download_progress(model or f"{task} model") as progress:
        loaded = resolve(task=task, model=model, weights=weights, tlc=tlc, offline=offline, progress=progress)
    restorer = Restorer(loaded, device=device)
    if restorer.model.stereo:
        raise UsageError(f"{loaded.source}: holds a stereo SR model ({loaded.spec.describe()}); use 'nafcli sr'")
    written = restore_file(restorer, image, output, task=task)
    print(written)


def register(app: typer.Typer) -> None:
    @app.command(help="Remove noise from a photo (NAFNet trained on SIDD).")
    @handle_errors
    def denoise(
        image: ImageArg,
        weights: WeightsOpt = None,
        model: ModelOpt = None,
        offline: OfflineOpt = False,
        output: OutputOpt = None,
        device: DeviceOpt = "auto",
        tlc: Annotated[
            bool, typer.Option("--tlc/--no-tlc", help="Test-time local statistics (TLC) in the channel attention.")
        ] = False,
    ) -> None:
        _restore("denoise", image, weights, output, device, tlc, model, offline)

    @app.command(help="Remove motion blur from a photo (NAFNet trained on GoPro or REDS, with TLC).")
    @handle_errors
    def deblur(
        image: ImageArg,
        weights: WeightsOpt = None,
        model: ModelOpt = None,
        offline: OfflineOpt = False,
        output: OutputOpt = None,
        device: DeviceOpt = "auto",
        tlc: Annotated[
            bool,
            typer.Option(
                "--tlc/--no-tlc",
                help="Test-time local statistics (TLC): the authors' setting for deblurring, worth ~0.6 dB.",
            ),
        ] = True,
    ) -> None:
        _restore("deblur", image, weights, output, device, tlc, model, offline)
