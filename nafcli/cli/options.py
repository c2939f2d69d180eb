"""Options shared by the commands, defined once (Annotated aliases), each value parsed once.

Nothing here imports torch: ``nafcli --help`` builds every command's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from ..imaging.formats import OUTPUT_FORMATS, normalise_format


def _size(name: str):  # noqa: ANN202 - a parser factory
    """A parser of ``auto`` / N for option ``name`` (None for auto): the library's one parser, its
    message as a usage error."""

    def parse(value: str) -> int | None:
        from ..inference.sizing import parse_size  # torch: only once a command runs with this option

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


# --- which model -----------------------------------------------------------------------------------

WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", "-w", help="A weights file (.pth or .safetensors); the architecture is detected "
                 "from its contents.", show_default=False),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="ID", help="A pretrained model id (default: the task's default; "
                 "see 'nafcli models list').", show_default=False),
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
    typer.Option("--device", "-d", help="auto (CUDA when available), cpu, cuda, cuda:N, all (one worker per CUDA "
                 "device; the CPU where there is none) or a list such as cuda:0,cuda:2."),
]

# --- inputs and outputs ----------------------------------------------------------------------------

InputsArg = Annotated[
    list[str],
    typer.Argument(help="Images, folders or glob patterns ('photos/*.jpg'); images are recognised by content.",
                   show_default=False),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Output file (one input) or folder (many inputs; the input tree is "
                 "mirrored under it). Default: beside each input, NAME_<task>.EXT.", show_default=False),
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
SuffixOpt = Annotated[
    str | None,
    typer.Option("--suffix", help="Output name suffix (default _denoised / _deblurred / _sr).", show_default=False),
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", callback=_format, show_default=False,
                 help=f"{', '.join(OUTPUT_FORMATS)}. Default: the input's format, or PNG when it cannot hold "
                 "the result."),
]
QualityOpt = Annotated[
    int | None,
    typer.Option("--quality", "-q", min=1, max=100, help="JPEG/WebP quality (default 95).", show_default=False),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them, so runs resume).")
]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first file that fails.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bar and no warnings; errors still shown.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="One JSON object per input on stdout (input, output, status, ...).")
]
MaxPixelsOpt = Annotated[
    str,
    typer.Option("--max-pixels", help="Refuse images with more pixels than this (e.g. 200M, 5e7; 0 for no limit)."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Print the tile grid, device and time on stderr.")]

# --- how the model runs (see nafcli/inference/settings.py) ----------------------------------------

PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", "-p", help="fp32, bf16, fp16 or auto. bf16: faster on hardware with native "
                 "bf16, output within about 1/255 of fp32 (PSNR ~45-60 dB vs fp32); fp16: GPUs only; auto: bf16 "
                 "where native, else fp32. Statistics stay float32."),
]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the network (one compilation per input shape; the warm-up is "
                 "reported)."),
]
ThreadsOpt = Annotated[
    int, typer.Option("--threads", "-t", help="CPU threads (0: the usable cores; 2 when a GPU does the work).")
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
    typer.Option("--overlap", min=0, show_default=False,
                 help="Context pixels per tile side, thrown away and cross-faded over as many more (default "
                 "16). Stereo SR: input rows shared by neighbouring strips (default: 2x the model's receptive "
                 "field, at most 92; see docs/stereo.md)."),
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
    typer.Option("--crf", min=0, max=63, show_default=False,
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
