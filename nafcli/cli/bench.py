"""``nafcli bench``: time the fast path against the reference path (see :mod:`nafcli.bench`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .options import CompileOpt, DeviceOpt, HelpCommand, ThreadsOpt, TileOpt


def _parse_arch_config(value: str) -> tuple[str, dict]:
    """``nafnet:{"width": 16, ...}`` or a JSON object with an ``arch`` key."""
    arch, _, rest = value.partition(":")
    try:
        if rest:
            return arch.strip(), json.loads(rest)
        obj = json.loads(value)
        return obj.pop("arch"), obj
    except (json.JSONDecodeError, KeyError, AttributeError):
        raise UsageError(
            f"--arch-config {value!r}: expected ARCH:JSON, e.g. "
            'nafnet:{"width": 16, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}'
        ) from None


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def register(app: typer.Typer) -> None:
    @app.command(cls=HelpCommand, help="Time the fast path against the reference path on a random input (table or --json).")
    def bench(
        model: Annotated[
            str | None,
            typer.Option(
                "--model", "-m", metavar="ID", help="Official architecture id (random weights), e.g. nafnet-sidd-width32."
            ),
        ] = None,
        weights: Annotated[
            Path | None, typer.Option("--weights", "-w", metavar="FILE", help="Benchmark the network in this weights file.")
        ] = None,
        arch_config: Annotated[
            str | None,
            typer.Option(
                "--arch-config", metavar="ARCH:JSON", help="ARCH:JSON hyperparameters, random weights (e.g. a small model)."
            ),
        ] = None,
        size: Annotated[
            int, typer.Option("--size", metavar="N", help="Input side in pixels (square; LR side for SR).")
        ] = 1024,
        precision: Annotated[
            list[str] | None,
            typer.Option("--precision", "-p", metavar="fp32|bf16|fp16|auto", help="fp32, bf16, fp16 or auto; repeat for several rows."),
        ] = None,
        tile: TileOpt = None,
        device: DeviceOpt = "auto",
        repeat: Annotated[
            int, typer.Option("--repeat", "-n", metavar="N", help="Timed runs per path (median reported).")
        ] = 3,
        reference: Annotated[
            bool,
            typer.Option("--reference/--no-reference", help="Also time the reference path (whole image)."),
        ] = True,
        reference_repeat: Annotated[
            int, typer.Option("--reference-repeat", metavar="N", help="Timed reference runs.")
        ] = 1,
        tlc: Annotated[
            bool | None, typer.Option("--tlc/--no-tlc", help="Override the model's TLC setting.")
        ] = None,
        compile: CompileOpt = False,
        threads: ThreadsOpt = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        from ..inference.settings import configure_threads, resolve_device
        from ..quality.bench import run_bench
        from ..weights import load

        dev = resolve_device(device)
        configure_threads(threads, dev)
        config = _parse_arch_config(arch_config) if arch_config else None
        # a registry id or a config: random weights of that architecture (a weights file is read as it is)
        default_task = "denoise" if model is None and weights is None and config is None else None
        loaded = load(task=default_task, model=model, weights=weights, config=config, tlc=tlc, pretrained=False)
        result = run_bench(
            loaded,
            label=loaded.label,
            size=size,
            precisions=tuple(precision or ["fp32", "auto"]),
            device=device,
            tile="auto" if tile is None else tile,
            repeat=repeat,
            reference=reference,
            reference_repeat=reference_repeat,
            compile=compile,
            tune_allocator=True,
            progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True),
        )
        if as_json:
            print(json.dumps(result.to_dict(), indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        shape = "x".join(map(str, result.input_shape))
        table = Table(
            title=f"{result.model}: {result.architecture}, input {shape}, {result.device}, "
            f"{result.threads} threads, tile {result.tile}"
        )
        for col in (
            "path",
            "precision",
            "median s",
            "MP/s",
            "GFLOP/s",
            "peak mem",
            "vs reference",
            "PSNR dB",
            "warm-up s",
        ):
            table.add_column(col, justify="left" if col in ("path", "precision") else "right")
        for p in result.paths:
            table.add_row(
                p.name + (f", tile {p.tile_size}" if p.tile_size else ""),
                p.precision,
                f"{p.median:.3f}",
                f"{p.megapixels_per_second(result.pixels):.3f}",
                f"{p.gflops_per_second:.1f}",
                _mib(p.peak_memory_bytes),
                "" if p.speedup is None else f"{p.speedup:.2f}x",
                "" if p.psnr_vs_reference is None else f"{p.psnr_vs_reference:.1f}",
                f"{p.warmup_seconds:.2f}",
            )
        Console(file=sys.stdout, width=160).print(table)
        if result.allocator_tuned:
            print("fast rows: glibc malloc keeps freed blocks for reuse, as nafcli runs (reference row: the "
                  "default allocator; NAFCLI_MALLOC_TUNING=0 for both)", file=sys.stderr)
