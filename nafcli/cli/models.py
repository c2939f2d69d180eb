"""``nafcli models …``: list, download, verify, locate, import and remove pretrained weights.

Thin: the work is in ``nafcli.weights`` (registry, hub, loader). ``models list`` imports neither torch nor
huggingface_hub, so it answers at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import HashMismatchError, NafcliError, NotDownloadedError, UsageError
from ..weights.catalog import catalog
from ..weights.hub import fetch, present_file, reverify
from ..weights.hub import remove as remove_files
from ..weights.registry import load_registry
from .options import HelpCommand, HelpGroup
from .render import download_progress, error

app = typer.Typer(cls=HelpGroup, help="List, download, verify, import and remove pretrained weights.",
                  no_args_is_help=True)

IdsArg = Annotated[
    list[str] | None, typer.Argument(metavar="ID...", help="Model ids (see 'nafcli models list').", show_default=False)
]


def _size(n: int | None, download: str = "hub") -> str:
    if n is None:
        return "manual" if download == "manual" else "?"
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def _params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


@app.command("list", cls=HelpCommand)
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Every model of the registry: task, size, the authors' score, default, downloaded."""
    rows = catalog()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("id", "task", "params", "size", "score (authors)", "default", "downloaded"):
        table.add_column(col, justify="right" if col in ("params", "size") else "left", no_wrap=True)
    for r in rows:
        score = "?" if r["psnr"] is None else f"{r['psnr']:.2f}"
        if r["ssim"] is not None:
            score += f" / {r['ssim']:.4f}"
        if r["benchmark"]:
            score += f" {r['benchmark']}"
        table.add_row(
            r["id"], r["task"], _params(r["params"]), _size(r["size"], r["download"]), score,
            "yes" if r["default"] else "", "yes" if r["downloaded"] else "no",
        )  # fmt: skip
    console = Console()
    if not console.is_terminal:  # a pipe: never cut ids to fit an imaginary 80 columns
        console = Console(width=200)
    console.print(table)
    pages = sorted({r["source"] for r in rows if r["download"] == "manual"})
    if pages:
        console.print(f"manual: published only on the authors' page ({', '.join(pages)}); download the .pth "
                      "there, then 'nafcli models import FILE'", highlight=False, soft_wrap=True, markup=False)


@app.command(cls=HelpCommand)
def download(
    ids: IdsArg = None,
    all_: Annotated[bool, typer.Option("--all", help="Every model that is on the hub.")] = False,
) -> None:
    """Download (and verify) models into the Hugging Face cache; prints each file's path, and with several
    models a summary."""
    reg = load_registry()
    if all_ and ids:
        raise UsageError("give model ids or --all, not both")
    if not all_ and not ids:
        raise UsageError("give one or more model ids, or --all")
    entries = [e for e in reg if e.on_hub] if all_ else [reg.get(i) for i in ids or []]
    counts = {"downloaded": 0, "already in the cache": 0, "failed": 0}
    code = 0
    for e in entries:
        try:
            cached = present_file(e) is not None
            with download_progress(e.id) as progress:
                path = fetch(e, progress=progress)
            print(path, flush=True)
            counts["already in the cache" if cached else "downloaded"] += 1
        except NafcliError as err:
            error(str(err))
            counts["failed"] += 1
            # the one rule, per model: 2 when the environment cannot work (offline, no network, not on
            # the hub, cache not writable), 1 when a download failed its check
            code = max(code, err.exit_code)
    if all_ or len(entries) > 1:
        line = ", ".join(f"{n} {what}" for what, n in counts.items())
        manual = [e.id for e in reg if not e.on_hub] if all_ else []
        if manual:
            line += (f"; {len(manual)} manual-download models not included ('nafcli models list'; "
                     "'nafcli models download ID' says where each is)")
        print(line, file=sys.stderr)
    if code:
        raise typer.Exit(code)


@app.command(cls=HelpCommand)
def verify(ids: IdsArg = None) -> None:
    """Re-hash cached files against the registry (all cached models without ids)."""
    reg = load_registry()
    entries = [reg.get(i) for i in ids] if ids else [e for e in reg if present_file(e) is not None]
    bad = 0
    for e in entries:
        try:
            result = reverify(e)
        except HashMismatchError as err:
            error(str(err))
            bad += 1
            continue
        if result is None:
            error(f"{e.id}: not downloaded (nafcli models download {e.id})")
            bad += 1
        else:
            print(f"{e.id}\tok\t{result[1]}\t{result[0]}")
    if bad:
        raise typer.Exit(1)


@app.command(cls=HelpCommand)
def path(model_id: Annotated[str, typer.Argument(metavar="ID", help="A model id.")]) -> None:
    """Print where the model's file is in the cache (exit 1 when it is not downloaded)."""
    e = load_registry().get(model_id)
    p = present_file(e)
    if p is None:
        raise NotDownloadedError(f"{e.id} is not downloaded (nafcli models download {e.id})")
    print(p)


@app.command("import", cls=HelpCommand)
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A weights file you downloaded yourself.")],
    as_id: Annotated[
        str | None,
        typer.Option("--as", metavar="ID", help="The model it is (default: found by hash or file name)."),
    ] = None,
) -> None:
    """Put a local file into the cache as a registry model (checked by SHA-256, or by architecture)."""
    from ..weights.loader import import_weights  # needs torch: imported when used

    done = import_weights(file, as_id=as_id)
    print(done.describe(file), file=sys.stderr)
    print(done.path)


@app.command(cls=HelpCommand)
def remove(model_id: Annotated[str, typer.Argument(metavar="ID", help="A model id.")]) -> None:
    """Delete the model's cached file and its safetensors copy."""
    e = load_registry().get(model_id)
    result = remove_files(e)
    for p, users in result.kept:
        print(f"{e.id}: kept {p}: it is also the file of {', '.join(users)} (remove that too to delete it)",
              file=sys.stderr)
    if not result.removed and not result.kept:
        print(f"{e.id}: nothing cached", file=sys.stderr)
    for p in result.removed:
        print(p)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
