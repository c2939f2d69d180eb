"""The ``nafcli`` command: every command registered here, every error mapped to a message here.

Errors: a :class:`~nafcli.errors.NafcliError` becomes ``error: <message>`` on stderr and its exit code
(1, or 2 for usage errors); Ctrl-C exits 130; anything else is a bug: one line that says so, and the
traceback only with ``--debug`` or ``NAFCLI_DEBUG=1`` (as huggingface_hub's CLI does). Commands raise;
they do not catch.

Nothing here imports torch: ``nafcli --help`` must start fast. Commands import the workflows (which need
torch) when they run.
"""

from __future__ import annotations

import os
import traceback
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from .._version import __version__
from ..errors import NafcliError
from . import bench, check, evaluate, models, restore, sr
from .options import HelpGroup
from .render import error

_state = {"debug": False}


def debug_enabled() -> bool:
    return _state["debug"] or os.environ.get("NAFCLI_DEBUG", "") not in ("", "0", "false", "no")


class NafcliGroup(HelpGroup):
    """The one place where exceptions become one-line messages and exit codes, for every command."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # the parser's own: usage errors (exit 2), --help, explicit exit codes
        except NafcliError as e:
            if debug_enabled():
                traceback.print_exc()
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
            if debug_enabled():
                traceback.print_exc()
            first = str(e).splitlines()[0] if str(e) else ""
            error(f"unexpected {type(e).__name__}: {first} (run with --debug for the traceback)")
            raise typer.Exit(1) from None


app = typer.Typer(
    name="nafcli",
    cls=NafcliGroup,
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
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors (also NAFCLI_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


# Every command, in the order --help lists them.
for command in (restore, sr, models, check, evaluate, bench):
    command.register(app)


def run() -> None:
    """Console-script entry point."""
    app(prog_name="nafcli")
