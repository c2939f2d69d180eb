"""``nafcli eval``: PSNR / SSIM of a model (or of existing outputs) against ground truth."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .options import HelpCommand, OneDeviceOpt, WeightsOpt
from .render import download_progress
from .tables import print_eval, score, write_eval_csv


class EvalTask(str, Enum):
    denoise = "denoise"
    deblur = "deblur"
    sr = "sr"


#: the registry task of each --task value
TASKS = {EvalTask.denoise: "denoise", EvalTask.deblur: "deblur", EvalTask.sr: "stereo-sr"}


class SSIMChoice(str, Enum):
    wang = "wang"
    authors = "authors"


DirOpt = Annotated[Path | None, typer.Option(show_default=False, file_okay=False)]


def register(app: typer.Typer) -> None:
    @app.command(
        name="eval",
        cls=HelpCommand,
        help="Score a model on a test set (PSNR / SSIM as the authors' benchmarks compute them), or score "
        "existing outputs with --restored. Files are paired by name; stereo pairs as NAME_L/NAME_R or a "
        "folder per scene.",
    )
    def eval_(
        target: Annotated[Path, typer.Option("--target", metavar="DIR", help="Folder of ground-truth images.",
                                             file_okay=False, show_default=False)],
        input_dir: Annotated[Path | None, typer.Option("--input", "-i", metavar="DIR", help="Folder of degraded inputs.",
                                                       file_okay=False, show_default=False)] = None,
        model: Annotated[str | None, typer.Option("--model", "-m", metavar="ID", help="A pretrained model id ('nafcli models list').",
                                                  show_default=False)] = None,
        weights: WeightsOpt = None,
        restored: Annotated[Path | None, typer.Option(
            "--restored", metavar="DIR", help="Score the images in this folder instead of running a model.",
            file_okay=False, show_default=False)] = None,
        task: Annotated[EvalTask | None, typer.Option(
            "--task", help="What the weights do: deblur turns TLC on; sr pairs stereo views.",
            show_default=False)] = None,
        tlc: Annotated[bool | None, typer.Option(
            "--tlc/--no-tlc", help="Override the TLC setting (default: the model's / task's).",
            show_default=False)] = None,
        ssim_mode: Annotated[SSIMChoice, typer.Option(
            "--ssim", help="wang: per-channel Gaussian SSIM (BasicSR). authors: the variant the authors' "
            "published SSIM used (3-D Gaussian for denoise/deblur, 7x7 uniform for stereo).")] = SSIMChoice.wang,
        unquantized: Annotated[bool, typer.Option(
            "--float", help="Score the network's float output instead of the 8-bit image (the authors' "
            "SIDD benchmark does this).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
        csv_path: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Also write per-image scores to FILE.",
                                                      dir_okay=False, show_default=False)] = None,
        device: OneDeviceOpt = "auto",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    ) -> None:
        from ..quality.evaluate import ItemResult, evaluate_model, evaluate_restored, result_dict

        sources = [n for n, v in (("--model", model), ("--weights", weights), ("--restored", restored)) if v]
        if len(sources) != 1:
            raise UsageError("give exactly one of --model ID, --weights FILE or --restored DIR")
        if restored is not None and input_dir is not None:
            raise UsageError("--input is for running a model; --restored scores existing outputs")
        if restored is None and input_dir is None:
            raise UsageError(f"{sources[0]} needs --input DIR (the degraded images)")
        if restored is not None and (tlc is not None or unquantized):
            raise UsageError("--tlc and --float apply to a model run, not to --restored")

        def progress(done: int, total: int, item: ItemResult) -> None:
            if not quiet:
                base = "" if item.baseline is None else (
                    f" (input: {score(item.baseline.psnr, 4)} dB, SSIM {score(item.baseline.ssim, 4)})")
                print(f"[{done}/{total}] {item.name}: {score(item.psnr, 4)} dB, SSIM {score(item.ssim, 4)}{base}",
                      file=sys.stderr, flush=True)

        mode = ssim_mode.value
        if restored is not None:
            result = evaluate_restored(restored, target, stereo=task is EvalTask.sr, ssim_mode=mode,
                                       progress=progress)
        else:
            restorer, name = _load(model, weights, task, tlc, device)
            if not quiet:
                for message in restorer.model.warnings:
                    print(f"warning: {message}", file=sys.stderr)
            assert input_dir is not None
            result = evaluate_model(restorer, input_dir, target, ssim_mode=mode, quantize=not unquantized,
                                    model_name=name, progress=progress)
        if csv_path is not None:
            write_eval_csv(csv_path, result)
        if as_json:
            print(json.dumps(result_dict(result), indent=2))
        else:
            print_eval(result)
        if result.unused_targets and not quiet:
            print(f"note: {len(result.unused_targets)} target(s) had no counterpart, e.g. "
                  f"{result.unused_targets[0]!r}", file=sys.stderr)


def _load(model: str | None, weights: Path | None, task: EvalTask | None, tlc: bool | None, device: str):
    """The Restorer for --model / --weights (see :func:`~nafcli.quality.evaluate.model_for_eval`)."""
    from ..quality.evaluate import model_for_eval

    with download_progress(model or "weights") as progress:
        restorer = model_for_eval(model=model, weights=weights, task=None if task is None else TASKS[task],
                                  tlc=tlc, device=device, progress=progress)
    return restorer, restorer.model.label
