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
TileOpt = Annotated[
    str,
    typer.Option(
        "--tile",
        help="Tile size in pixels: auto (from free memory), N, or 0 for the whole image at once.",
    ),
]
OverlapOpt = Annotated[
    int | None,
    typer.Option(
        "--overlap",
        min=0,
        help="Context pixels per tile side, thrown away and cross-faded over as many more. Default: 16.",
        show_default=False,
    ),
]
BatchSizeOpt = Annotated[
    str,
    typer.Option("--batch-size", help="Equal tiles per forward pass: auto (fills GPU memory; 1 on CPU) or N."),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Print the tile grid, device and time on stderr."),
]
