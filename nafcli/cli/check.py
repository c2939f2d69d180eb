"""``nafcli check``: run each downloaded model on the authors' demo input and compare with their output."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ..errors import UsageError
from .options import HelpCommand, OneDeviceOpt, WeightsOpt

_LABELS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "not-downloaded": "not downloaded",
           "not-checkable": "not checkable"}


def register(app: typer.Typer) -> None:
    @app.command(
        cls=HelpCommand,
        help="Prove an install: run each downloaded model on the authors' demo image and compare with the "
        "output their own code published (pass: PSNR >= 40 dB). Exit code 1 if any check fails, if a "
        "model named is not downloaded, or if nothing could be checked. --weights FILE checks a file "
        "obtained by hand (as -m ID, or the model it is found to be)."
    )
    def check(
        ids: Annotated[
            list[str] | None,
            typer.Argument(metavar="ID...", help="Model ids to check (default: every model in the registry).", show_default=False),
        ] = None,
        weights: WeightsOpt = None,
        model: Annotated[
            str | None,
            typer.Option("--model", "-m", metavar="ID", help="With --weights: the model the file is (default: "
                         "found by hash, architecture or file name).", show_default=False),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
        device: OneDeviceOpt = "auto",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    ) -> None:
        from ..quality.check import PASS_DB, check_file, check_models, checkable_note, exit_code

        def progress(model_id: str) -> None:
            if not quiet:
                print(f"checking {model_id} ...", file=sys.stderr, flush=True)

        if weights is not None:
            if ids:
                raise UsageError("give model ids or --weights FILE (with -m ID), not both")
            results = [check_file(weights, model=model, device=device, progress=progress)]
        else:
            if model is not None:
                raise UsageError("-m ID names the model of a --weights FILE; to check a downloaded model, give "
                                 "its id: nafcli check ID")
            results = check_models(ids or None, device=device, progress=progress)
        if as_json:
            print(json.dumps({"threshold": PASS_DB, "ok": exit_code(results) == 0,
                              "models": [r.as_dict() for r in results]}, indent=2))
        else:
            width = max([len("model")] + [len(r.model_id) for r in results])
            print(f"{'model':<{width}}  {'result':<14}  {'PSNR (dB)':>9}  detail")
            for r in results:
                db = "" if r.psnr is None else f"{r.psnr:9.2f}"
                print(f"{r.model_id:<{width}}  {_LABELS[r.status]:<14}  {db:>9}  {r.message}")
        if not any(r.checked for r in results):
            # said even with --quiet: it is why the exit code is 1
            print(f"error: nothing was checked: {checkable_note(for_file=weights is not None)}", file=sys.stderr)
        code = exit_code(results)
        if code:
            raise typer.Exit(code)
