"""``nafcli check``: run each downloaded model on the authors' demo input and compare with their output."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .options import DeviceOpt, HelpCommand

_LABELS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "not-downloaded": "not downloaded",
           "not-checkable": "not checkable"}


def register(app: typer.Typer) -> None:
    @app.command(
        cls=HelpCommand,
        help="Prove an install: run each downloaded model on the authors' demo image and compare with the "
        "output their own code published (pass: PSNR >= 40 dB). Exit code 1 if any check fails."
    )
    def check(
        ids: Annotated[
            list[str] | None,
            typer.Argument(metavar="ID...", help="Model ids to check (default: every model in the registry).", show_default=False),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
        device: DeviceOpt = "auto",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    ) -> None:
        from ..quality.check import PASS_DB, check_models

        def progress(model_id: str) -> None:
            if not quiet:
                print(f"checking {model_id} ...", file=sys.stderr, flush=True)

        results = check_models(ids or None, device=device, progress=progress)
        if as_json:
            print(json.dumps({"threshold": PASS_DB, "ok": all(r.ok for r in results),
                              "models": [r.as_dict() for r in results]}, indent=2))
        else:
            width = max([len("model")] + [len(r.model_id) for r in results])
            print(f"{'model':<{width}}  {'result':<14}  {'PSNR (dB)':>9}  detail")
            for r in results:
                db = "" if r.psnr is None else f"{r.psnr:9.2f}"
                print(f"{r.model_id:<{width}}  {_LABELS[r.status]:<14}  {db:>9}  {r.message}")
        if not quiet and not any(r.status in ("pass", "fail", "error") for r in results):
            print("note: no model was checked; download one first ('nafcli models download ID')",
                  file=sys.stderr)
        if not all(r.ok for r in results):
            raise typer.Exit(1)
