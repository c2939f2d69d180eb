"""Options shared by several commands, defined once (Annotated aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        "-w",
        help="A weights file (.pth or .safetensors); the architecture is detected from its contents.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file. Default: beside the input, NAME_<task>.png.",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        "-d",
        help="auto (CUDA when available), cpu, cuda or cuda:N.",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        "-p",
        help="fp32, bf16, fp16 or auto. bf16: several times faster on hardware with native bf16, output "
        "within about 1/255 of fp32 (PSNR ~45-55 dB vs fp32); fp16: GPUs only; auto: bf16 where native, "
        "else fp32. Statistics stay float32.",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the network (one compilation per input shape; the warm-up is reported).",
    ),
]
ThreadsOpt = Annotated[
    int,
    typer.Option("--threads", "-t", help="CPU threads (0: the usable cores; 2 when a GPU does the work)."),
]
ReferenceOpt = Annotated[
    bool,
    typer.Option(
        "--reference",
        hidden=True,
        help="Debug: run the authors' reference computation instead of the fast path.",
    ),
]
