"""Options shared by the commands, defined once (Annotated aliases), each value parsed once; and how every
command's ``--help`` shows them (:class:`HelpCommand`, :class:`HelpGroup`).

Help conventions, kept by ``tests/test_help.py``: one metavar per kind of value across commands (``ID`` for a
model, ``FILE``, ``DIR``, ``PATH`` for a file or a folder, ``N`` for a count, ``auto|N``, choices spelled
out as ``a|b|c``); flags show no metavar; arguments show as ``INPUT...`` in the usage line; defaults are
named, the task-dependent ones (default model, suffix, overlap) filled in per command from the registry
and the architecture specs when the help is shown.

Nothing here imports torch: ``nafcli --help`` builds every command's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from ..errors import UsageError
from ..imaging.formats import OUTPUT_FORMATS, normalise_format


def _size(name: str):  # noqa: ANN202 - a parser factory
    """A parser of ``auto`` / N for option ``name`` (None for auto): the library's one parser, its
    message as a usage error."""

    def parse(value: str) -> int | None:
        from ..inference.cut_options import parse_size  # torch: only once a command runs with this option

        try:
            return parse_size(value, name)
        except UsageError as e:
            raise typer.BadParameter(str(e).removeprefix(f"{name} "), param_hint=name) from None

    return parse


def _format(value: str | None) -> str | None:
    if value is None:
        return None
    fmt = normalise_format(value)
    if fmt is None:
        raise typer.BadParameter(f"{value!r}: use {', '.join(OUTPUT_FORMATS)}", param_hint="--format")
    return fmt


def _time(name: str):  # noqa: ANN202 - a parser factory
    """A parser of ``--start``/``--duration`` values (seconds, M:SS, H:MM:SS.mmm): the video layer's one
    parser, its message as a usage error."""

    def parse(value: str) -> float:
        from ..imaging.video_probe import parse_time  # PyAV: only once a command runs with this option

        try:
            return parse_time(value)
        except UsageError as e:
            raise typer.BadParameter(str(e), param_hint=name) from None

    return parse


def parse_pixels(text: str) -> int:
    """``200M`` / ``1.5G`` / ``5e7`` / ``40000000`` -> a pixel count; BadParameter otherwise."""
    t = text.strip().lower().replace("_", "")
    factor = 1
    if t and t[-1] in "kmg":
        factor = {"k": 10**3, "m": 10**6, "g": 10**9}[t[-1]]
        t = t[:-1]
    try:
        value = float(t) * factor
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a pixel count (e.g. 200M)", param_hint="--max-pixels") from None
    if value < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--max-pixels")
    return int(value)



# --- how options show in --help ----------------------------------------------------------------------

#: the registry task of each command whose help names the task's defaults
COMMAND_TASKS = {"denoise": "denoise", "deblur": "deblur", "sr": "stereo-sr"}

#: per-command text in shared help strings: ``{task_model}`` etc. are replaced (plain ``str.replace``, so
#: ``{stem}`` in ``--name``'s help stays as it is) when a command's help is shown
_HELP_FIELDS = ("task_model", "task_suffix", "task_overlap", "task_unit")


def help_fields(command: str | None) -> dict[str, str]:
    """The values of the help fields for ``command``: its task's default model (id and size, from the
    registry), output suffix, default overlap and what one ``--json`` record stands for."""
    from ..jobs.names import SUFFIXES
    from ..weights.registry import load_registry

    task = COMMAND_TASKS.get(command or "")
    if task is None:
        return {"task_model": "the task's default", "task_suffix": "the task's suffix",
                "task_overlap": "16", "task_unit": "input"}
    entry = load_registry().default_for(task)
    size = f", {entry.size / 1e6:.0f} MB, downloaded on first use" if entry.size else ""
    tiling = entry.spec.tiling(tlc=entry.tlc)
    # Tiles take inference.cut_options.DEFAULT_OVERLAP (16; importing it would import torch), strips their own
    overlap = str(getattr(tiling, "default_overlap", 16))
    if task == "stereo-sr":
        overlap += " input rows for the official models (2x the receptive field, at most 92; docs/stereo.md)"
    return {"task_model": f"{entry.id}{size}", "task_suffix": SUFFIXES[task], "task_overlap": overlap,
            "task_unit": "pair (or single image)" if task == "stereo-sr" else "input"}


class _Argument(TyperArgument):
    """An argument shown by its metavar alone: ``INPUT...`` in the usage line (Typer writes
    ``{inputs}...``) and no ``<list[str]>`` beside it in the Arguments panel. Help-only: no state added."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


class _Option(TyperOption):
    """An option shown by its metavar: none for a flag (Typer writes ``<bool>``), the choices as ``a|b``
    for an enum, and a string default as it is (Typer wraps it in parentheses). Help-only: no state added."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag:
            return None
        return self.display_type(ctx).strip("<>")

    def _get_default_string(self, *, ctx: Any, show_default_is_str: bool, default_value: Any) -> str:
        if show_default_is_str:
            return str(self.show_default)
        return super()._get_default_string(ctx=ctx, show_default_is_str=False, default_value=default_value)


def _tidy(param: Any) -> None:
    # Typer builds its own parameter objects; these subclasses change how they are shown, nothing else
    if type(param) is TyperArgument:
        param.__class__ = _Argument
    elif type(param) is TyperOption:
        param.__class__ = _Option


def _fill(param: Any, fields: dict[str, str]) -> None:
    text = getattr(param, "help", None)
    if text and "{task_" in text:
        for key, value in fields.items():
            text = text.replace("{" + key + "}", value)
        param.help = text


class _CleanHelp:
    """What :class:`HelpCommand` and :class:`HelpGroup` share: tidy parameters as they are made, fill in
    the per-command help fields when the help is shown."""

    params: list[Any]
    name: str | None
    help: str | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _tidy(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _tidy(option)
        return option

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if any("{task_" in (getattr(p, "help", None) or "") for p in self.params) or "{task_" in (self.help or ""):
            fields = help_fields(self.name)
            for param in self.params:
                _fill(param, fields)
            _fill(self, fields)
        super().format_help(ctx, formatter)  # type: ignore[misc]


class HelpCommand(_CleanHelp, TyperCommand):
    """Every nafcli command's class (``app.command(cls=HelpCommand)``): clean metavars, named defaults."""


class HelpGroup(_CleanHelp, TyperGroup):
    """Every nafcli command group's class (``typer.Typer(cls=HelpGroup)``)."""


# --- which model -----------------------------------------------------------------------------------

WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", "-w", metavar="FILE", show_default=False,
                 help="A weights file (.pth or .safetensors); the architecture is detected from its contents."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="ID", show_default=False,
                 help="A pretrained model id ('nafcli models list'). Default: {task_model}."),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Use only the local cache (also HF_HUB_OFFLINE=1); never download.")
]
TlcOpt = Annotated[
    bool | None,
    typer.Option("--tlc/--no-tlc", help="Test-time local statistics (TLC) in the channel attention. Default: "
                 "as the authors test the model (on for deblurring and stereo SR, off for denoising).",
                 show_default=False),
]
DeviceOpt = Annotated[
    str,
    typer.Option("--device", "-d", metavar="DEVICE",
                 help="auto (CUDA when available), cpu, cuda, cuda:N, all (one worker per CUDA device; the CPU "
                 "where there is none) or a list such as cuda:0,cuda:2."),
]
#: ``--device`` of the commands that run on one device (bench, check, eval)
OneDeviceOpt = Annotated[
    str,
    typer.Option("--device", "-d", metavar="DEVICE", help="auto (CUDA when available), cpu, cuda or cuda:N."),
]

# --- inputs and outputs ----------------------------------------------------------------------------

InputsArg = Annotated[
    list[str],
    typer.Argument(metavar="INPUT...", show_default=False,
                   help="Images, videos, folders or glob patterns ('photos/*.jpg'); recognised by content."),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="PATH", show_default=False,
                 help="Output file (one input) or folder (many inputs; the input tree is mirrored under it). "
                 "Default: beside each input, NAME{task_suffix}.EXT."),
]
RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Descend into sub-folders (without it, a folder's sub-folders "
                       "are left out, and the images in them counted in the summary).")
]
SuffixOpt = Annotated[
    str | None,
    typer.Option("--suffix", metavar="TEXT", show_default=False,
                 help="Added to each output's name. Default: {task_suffix}."),
]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", metavar="TEMPLATE", show_default=False,
                 help="Output name without its extension, from {stem} (the input's name without extension), "
                 "{ext} (the input's extension), {suffix} and {model} (the model id or weights file name); "
                 "the extension of the format written is added. E.g. '{stem}_{ext}{suffix}' keeps img.png and "
                 "img.jpg apart with --format png. Default: '{stem}{suffix}'."),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", callback=_format, show_default=False, metavar="|".join(OUTPUT_FORMATS),
                 help="Output format. Default: the input's own (its extension kept as spelled: IMG.JPG -> "
                 "IMG{task_suffix}.JPG), or PNG when it cannot hold the result."),
]
QualityOpt = Annotated[
    int | None,
    typer.Option("--quality", metavar="N", min=1, max=100, show_default=False,
                 help="JPEG/WebP quality. Default: 95."),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them, so runs resume).")
]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first file that fails.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Errors only: no progress bar, warnings, output paths or summary "
                       "(--json records are still printed).")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="One JSON object per {task_unit} on stdout (input, output, status, ...).")
]
MaxPixelsOpt = Annotated[
    str,
    typer.Option("--max-pixels", metavar="PIXELS",
                 help="Refuse images with more pixels than this (e.g. 200M, 5e7; 0 for no limit)."),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print the tile grid, device and time of each image, and each "
                       "skipped input with the reason, on stderr.")
]

# --- how the model runs (see nafcli/inference/settings.py) ----------------------------------------

PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", "-p", metavar="fp32|bf16|fp16|auto",
                 help="bf16: faster on hardware with native bf16, output within about 1/255 of fp32 (PSNR ~45-60 "
                 "dB vs fp32); fp16: GPUs only; auto: bf16 where native, else fp32. Statistics stay float32."),
]
CompileOpt = Annotated[
    bool | None,
    typer.Option("--compile/--no-compile", show_default=False,
                 help="torch.compile the network, its kernels kept in the cache (NAFCLI_CACHE_DIR) so the next run of "
                 "the same model, precision and tile starts in seconds. Default: auto, compile when the planned "
                 "work repays the warm-up (measured or cached; --verbose says why)."),
]
ThreadsOpt = Annotated[
    int, typer.Option("--threads", "-t", metavar="N",
                      help="CPU threads (0: the usable cores; 2 when a GPU does the work).")
]
ReferenceOpt = Annotated[
    bool,
    typer.Option("--reference", hidden=True, help="Debug: run the authors' reference computation instead of the "
                 "fast path."),
]
TileOpt = Annotated[
    int | None,
    typer.Option("--tile", parser=_size("--tile"), metavar="auto|N", show_default="auto",
                 help="Tile size in pixels (strip height in input rows for stereo SR, whose strips span the "
                 "whole width): auto (from free memory), N, or 0 for the whole image at once."),
]
OverlapOpt = Annotated[
    int | None,
    typer.Option("--overlap", metavar="N", min=0, show_default=False,
                 help="Context pixels per tile side, thrown away and cross-faded over as many more; stereo SR: "
                 "input rows shared by neighbouring strips. Default: {task_overlap}."),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option("--batch-size", parser=_size("--batch-size"), metavar="auto|N", show_default="auto",
                 help="Equal tiles per forward pass: auto (fills GPU memory; 1 on CPU) or N."),
]

# --- videos (see docs/video.md) -------------------------------------------------------------------

CodecOpt = Annotated[
    str | None,
    typer.Option("--codec", metavar="ENCODER", show_default=False,
                 help="Videos: the encoder (libx264, libx265, libsvtav1, libvpx-vp9, ffv1, ...). Default: the "
                 "input's codec where there is an encoder for it (lossless stays lossless), else H.264 "
                 "(libx264)."),
]
CrfOpt = Annotated[
    int | None,
    typer.Option("--crf", metavar="N", min=0, max=63, show_default=False,
                 help="Videos: constant-quality level, lower is better. Default: visually lossless for the "
                 "encoder (H.264 17, HEVC 18, VP9 18, AV1 20; MPEG-4 and lossless codecs have none)."),
]
StartOpt = Annotated[
    float | None,
    typer.Option("--start", parser=_time("--start"), metavar="TIME", show_default=False,
                 help="Videos: begin at TIME (seconds, M:SS or H:MM:SS.mmm); sound and subtitles are cut "
                 "with the picture."),
]
DurationOpt = Annotated[
    float | None,
    typer.Option("--duration", parser=_time("--duration"), metavar="TIME", show_default=False,
                 help="Videos: keep TIME from --start on (seconds, M:SS or H:MM:SS.mmm), e.g. a 5 s preview."),
]

# --- beyond one process (see docs/scale-out.md) -----------------------------------------------------

ShardOpt = Annotated[
    str | None,
    typer.Option("--shard", metavar="K/N", show_default=False,
                 help="Run shard K of N (0 <= K < N): every N-th job of the batch sorted by input path, skipped "
                 "ones included, so the N tasks of a job array (Slurm, Kubernetes), each given the same command "
                 "line, cover the batch exactly once."),
]
RayOpt = Annotated[
    bool,
    typer.Option("--ray", help="Run the jobs on Ray: a local instance started for the run (on 127.0.0.1), or the "
                 "cluster of --ray-address. Needs pip install \"nafcli\\[ray]\"; inputs, outputs and the model "
                 "cache must be on a filesystem every node sees (docs/scale-out.md)."),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", metavar="ADDRESS", show_default=False,
                 help="The Ray cluster to run on, as ray.init takes it: auto (the cluster 'ray start' made this "
                 "node part of), HOST:PORT or ray://HOST:10001. Implies --ray."),
]
RayCpusOpt = Annotated[
    int | None,
    typer.Option("--ray-cpus-per-worker", metavar="N", min=1, show_default=False,
                 help="With --ray: CPUs (and torch threads) of each CPU worker, one worker per N CPUs of the "
                 "cluster (default 1); beside a GPU, CPUs reserved for each GPU worker."),
]
