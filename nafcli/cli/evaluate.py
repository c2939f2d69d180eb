"""``nafcli eval``: PSNR / SSIM of a model (or of existing outputs) against ground truth."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..imaging.files import atomic_write_bytes
from .options import DeviceOpt, HelpCommand, WeightsOpt
from .render import download_progress


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
        device: DeviceOpt = "auto",
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
                    f" (input: {_fmt(item.baseline.psnr, 4)} dB, SSIM {_fmt(item.baseline.ssim, 4)})")
                print(f"[{done}/{total}] {item.name}: {_fmt(item.psnr, 4)} dB, SSIM {_fmt(item.ssim, 4)}{base}",
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
            _write_csv(csv_path, result)
        if as_json:
            print(json.dumps(result_dict(result), indent=2))
        else:
            _print_table(result)
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


def _fmt(x: float, digits: int) -> str:
    return "inf" if x == float("inf") else f"{x:.{digits}f}"


def _print_table(result) -> None:
    """Per-image scores and their mean; after a model run, the inputs' own scores beside them (the
    baseline: what the model added is the difference)."""
    width = max([len("image")] + [len(it.name) for it in result.items] + [len(f"mean ({len(result.items)})")])
    base = result.baseline_method if result.baseline is not None else None
    head = f"{'image':<{width}}  {'PSNR (dB)':>10}  {'SSIM':>7}"
    if base:
        head += f"  {base + ' PSNR':>12}  {base + ' SSIM':>12}"
    print(head)

    def row(label: str, scores, baseline) -> str:  # noqa: ANN001 - Scores, Scores | None
        text = f"{label:<{width}}  {_fmt(scores.psnr, 4):>10}  {_fmt(scores.ssim, 4):>7}"
        if base and baseline is not None:
            text += f"  {_fmt(baseline.psnr, 4):>12}  {_fmt(baseline.ssim, 4):>12}"
        return text

    for it in result.items:
        print(row(it.name, it, it.baseline))
    print(row(f"mean ({len(result.items)})", result.mean, result.baseline))
    if base:
        gain = result.mean.psnr - result.baseline.psnr
        how = "the input as it is" if base == "input" else "the input upscaled bicubic"
        print(f"{base}: {how} against the target; the model adds {_fmt(gain, 2)} dB")


def _write_csv(path: Path, result) -> None:
    """name, source(s), target(s), psnr, ssim per image; a last row ``mean`` with the averages."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    base = result.baseline is not None
    w.writerow(["name", "source", "target", "psnr", "ssim"] + (["input_psnr", "input_ssim"] if base else []))

    def extra(b) -> list[str]:  # noqa: ANN001 - Scores | None
        return ([_fmt(b.psnr, 6), _fmt(b.ssim, 6)] if b is not None else ["", ""]) if base else []

    for it in result.items:
        w.writerow([it.name, ";".join(map(str, it.source)), ";".join(map(str, it.target)),
                    _fmt(it.psnr, 6), _fmt(it.ssim, 6), *extra(it.baseline)])
    w.writerow(["mean", "", "", _fmt(result.mean.psnr, 6), _fmt(result.mean.ssim, 6), *extra(result.baseline)])
    atomic_write_bytes(path, buf.getvalue().encode())
