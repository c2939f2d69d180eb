"""The ``nafcli`` command: a Typer app whose commands live in sibling modules.

Nothing here imports torch: ``nafcli --help`` must start fast. Commands import the library inside
their bodies.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import bench, check, evaluate, models, restore, sr
from .errors import set_debug

app = typer.Typer(
    name="nafcli",
    help="Image restoration with the NAFNet family: denoise, deblur, stereo super-resolution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"nafcli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors (also NAFCLI_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    set_debug(debug)


restore.register(app)
sr.register(app)
models.register(app)
check.register(app)
evaluate.register(app)
bench.register(app)


def run() -> None:
    """Console-script entry point."""
    app(prog_name="nafcli")
