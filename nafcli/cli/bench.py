"""``nafcli bench``: time the fast path against the reference path (see :mod:`nafcli.bench`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .options import HelpCommand, OneDeviceOpt, ThreadsOpt, TileOpt
from .tables import render_bench


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
        device: OneDeviceOpt = "auto",
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
        compile: Annotated[
            bool,
            typer.Option("--compile", help="Time the fast path compiled (torch.compile, kernels cached as in "
                         "denoise/deblur; the warm-up column shows the compilation or the cache load)."),
        ] = False,
        threads: ThreadsOpt = 0,
        limit: Annotated[
            bool,
            typer.Option("--limit/--no-limit", help="Measure the device's throughput on the model's own 1x1 "
                         "products after each timed run (the median is the row's limit) and show each row's "
                         "share of it."),
        ] = True,
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
            limit=limit,
            progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True),
        )
        for line in result.warnings:
            print(f"warning: {line}", file=sys.stderr, flush=True)
        if as_json:
            print(json.dumps(result.to_dict(), indent=1))
            return
        render_bench(result)
