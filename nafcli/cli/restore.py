"""``nafcli denoise`` and ``nafcli deblur``: any number of images and videos, folders or patterns through
NAFNet.

Both commands parse their options and call :func:`nafcli.jobs.workflows.restore_paths`; this module only
turns options into the workflow's records and the report into an exit code.
"""

from __future__ import annotations

from typing import Any

import typer

from .options import (
    BatchSizeOpt,
    CodecOpt,
    CompileOpt,
    CrfOpt,
    DeviceOpt,
    DurationOpt,
    FailFastOpt,
    FormatOpt,
    HelpCommand,
    InputsArg,
    JsonOpt,
    MaxPixelsOpt,
    ModelOpt,
    NameOpt,
    OfflineOpt,
    OutputOpt,
    OverlapOpt,
    OverwriteOpt,
    PrecisionOpt,
    QualityOpt,
    QuietOpt,
    RayAddressOpt,
    RayCpusOpt,
    RayOpt,
    RecursiveOpt,
    ReferenceOpt,
    ShardOpt,
    StartOpt,
    SuffixOpt,
    ThreadsOpt,
    TileOpt,
    TlcOpt,
    VerboseOpt,
    WeightsOpt,
    parse_pixels,
)
from .render import CliEvents, finish_batch


def _compile_mode(flag: bool | None) -> str:
    """``--compile`` / ``--no-compile`` / neither (auto)."""
    return "auto" if flag is None else ("on" if flag else "off")


def run_command(workflow: str, inputs: Any, o: dict[str, Any], **extra: Any) -> None:
    """Build the workflow's option records from a command's parameters ``o``, run it, render it, exit."""
    from ..jobs import workflows

    model = workflows.ModelChoice(model=o["model"], weights=o["weights"], tlc=o.get("tlc"), offline=o["offline"],
                                  scale=o.get("scale"))
    run = workflows.RunSettings(device=o["device"], precision=o["precision"], threads=o["threads"], tile=o["tile"],
                                overlap=o["overlap"], batch_size=o["batch_size"], compile=_compile_mode(o.get("compile")),
                                reference=o.get("reference", False))
    output = workflows.OutputOptions(output=o["output"], suffix=o["suffix"], name=o["name"], fmt=o["fmt"],
                                     quality=o["quality"], overwrite=o["overwrite"],
                                     max_pixels=parse_pixels(o["max_pixels"]))
    scale_out = workflows.ScaleOut(shard=o.get("shard"), ray=o.get("ray", False), ray_address=o.get("ray_address"),
                                   ray_cpus_per_worker=o.get("ray_cpus_per_worker"))
    with CliEvents(quiet=o["quiet"], as_json=o["as_json"], verbose=o["verbose"]) as events:
        report = getattr(workflows, workflow)(inputs, model=model, run=run, output=output, fail_fast=o["fail_fast"],
                                              events=events, scale_out=scale_out, **extra)
    code = finish_batch(report, quiet=o["quiet"])
    if code:
        raise typer.Exit(code)


def _command(task: str):  # noqa: ANN202 - a Typer command function
    """The command of one task; denoise and deblur take the same options."""

    def command(
        inputs: InputsArg, weights: WeightsOpt = None, model: ModelOpt = None, offline: OfflineOpt = False,
        output: OutputOpt = None, device: DeviceOpt = "auto", tlc: TlcOpt = None, recursive: RecursiveOpt = False,
        suffix: SuffixOpt = None, name: NameOpt = None, fmt: FormatOpt = None, quality: QualityOpt = None, overwrite: OverwriteOpt = False,
        fail_fast: FailFastOpt = False, quiet: QuietOpt = False, as_json: JsonOpt = False,
        max_pixels: MaxPixelsOpt = "200M", precision: PrecisionOpt = "fp32", compile: CompileOpt = None,
        threads: ThreadsOpt = 0, reference: ReferenceOpt = False, tile: TileOpt = None, overlap: OverlapOpt = None,
        batch_size: BatchSizeOpt = None, verbose: VerboseOpt = False, codec: CodecOpt = None, crf: CrfOpt = None,
        start: StartOpt = None, duration: DurationOpt = None, shard: ShardOpt = None, ray: RayOpt = False,
        ray_address: RayAddressOpt = None, ray_cpus_per_worker: RayCpusOpt = None,
    ) -> None:
        from ..jobs.video_work import VideoOptions

        video = VideoOptions(codec=codec, crf=crf, start=start, duration=duration)
        run_command("restore_paths", inputs, locals(), task=task, recursive=recursive, video=video)

    return command


def register(app: typer.Typer) -> None:
    app.command("denoise", cls=HelpCommand, help="Remove noise from photos and videos (NAFNet trained on SIDD).")(
        _command("denoise"))
    app.command("deblur", cls=HelpCommand, help="Remove motion blur from photos and videos (NAFNet trained on "
                "GoPro or REDS, with TLC).")(_command("deblur"))
