"""The ``nafcli`` command: every command registered here, every error mapped to a message here.

Errors: a :class:`~nafcli.errors.NafcliError` becomes ``error: <message>`` on stderr and its class's exit
code (the one rule is in ``nafcli/errors.py`` and the README: 1 something given failed, 2 the command line
or the environment cannot work); Ctrl-C exits 130; anything else is a bug: one line that says so, and the
traceback only with ``--debug`` or ``NAFCLI_DEBUG=1`` (as huggingface_hub's CLI does). Commands raise;
they do not catch.

A reader that closes stdout early (``nafcli models list --json | head -c 10``) ends the command quietly with
:data:`SIGPIPE_EXIT` (141, what a shell shows for a program killed by SIGPIPE, as ``yes | head`` gives): no
message, no traceback. A batch stops there like one interrupted: what was computed is written, nothing
is half-written, and a re-run resumes.

Nothing here imports torch: ``nafcli --help`` must start fast. Commands import the workflows (which need
torch) when they run.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from .._version import __version__
from ..errors import NafcliError
from . import bench, check, evaluate, models, restore, sr
from .options import HelpGroup
from .render import error

_state = {"debug": False}

#: the exit status after stdout's reader went away: 128 + SIGPIPE, as a shell reports a process it killed
SIGPIPE_EXIT = 141


def debug_enabled() -> bool:
    return _state["debug"] or os.environ.get("NAFCLI_DEBUG", "") not in ("", "0", "false", "no")


def _debug_first(args: Sequence[str]) -> list[str]:
    """``--debug`` anywhere before a ``--`` moved to the front, where the root group takes it, so that
    ``nafcli denoise --debug x`` works as ``nafcli --debug denoise x`` (a typo then shows its traceback
    wherever the flag was typed)."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    found = "--debug" in args[:end]
    rest = [a for a in args[:end] if a != "--debug"] + args[end:]
    return ["--debug", *rest] if found else rest


def _stdout_gone() -> None:
    """Point file descriptor 1 at /dev/null, so that the interpreter's last flush of what is still
    buffered succeeds silently instead of printing 'Exception ignored ... BrokenPipeError'."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test runner's buffer): nothing will be flushed to a closed pipe


def _fd1() -> tuple[int, int] | None:
    """What file descriptor 1 is (device, inode), to notice that something redirected it."""
    try:
        st = os.fstat(1)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()


class NafcliGroup(HelpGroup):
    """The one place where exceptions become one-line messages and exit codes, for every command."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        stdout_before = _fd1()
        try:
            return super().main(_debug_first(sys.argv[1:] if args is None else args), *rest, **kwargs)
        except SystemExit as e:
            # A closed stdout met by our libraries rather than by our own writes: the parser (``nafcli
            # --version | true``) wraps stdout in its PacifyFlushWrapper and exits 1; rich (help, the
            # ``models list`` and ``bench`` tables) points fd 1 at /dev/null and exits 1. End as every
            # command does then.
            if e.code == 1 and (type(sys.stdout).__name__ == "PacifyFlushWrapper" or _fd1() != stdout_before):
                _stdout_gone()
                raise SystemExit(SIGPIPE_EXIT) from None
            raise

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            try:
                result = super().invoke(ctx)
            except BaseException:
                _flush_stdout()  # the failure's own message and exit code matter more than a closed reader
                raise
            # what print() left buffered goes now, so that a closed reader shows up here and not in the
            # interpreter's shutdown
            sys.stdout.flush()
            return result
        except BrokenPipeError:
            _stdout_gone()
            raise typer.Exit(SIGPIPE_EXIT) from None
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
        print(f"nafcli {__version__}", flush=True)  # a closed stdout fails here, where main sees it
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
