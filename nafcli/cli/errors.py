"""The one place where exceptions become one-line messages and exit codes.

``NafcliError`` -> ``error: <message>`` on stderr and its ``exit_code`` (1; 2 for usage errors).
``KeyboardInterrupt`` -> exit 130. Anything else is a bug: a one-line message that says so, and the
traceback only with ``--debug`` or ``NAFCLI_DEBUG=1`` (as huggingface_hub's CLI does).
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import NafcliError

F = TypeVar("F", bound=Callable[..., Any])

_debug = False


def set_debug(enabled: bool) -> None:
    global _debug
    _debug = enabled


def debug_enabled() -> bool:
    return _debug or os.environ.get("NAFCLI_DEBUG", "") not in ("", "0", "false", "no")


def error(message: str) -> None:
    """Print one ``error:`` line on stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def handle_errors(func: F) -> F:
    """Decorate a command so that failures end in one line and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except NafcliError as e:
            if debug_enabled():
                traceback.print_exc()
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except typer.BadParameter:
            raise
        except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
            if debug_enabled():
                traceback.print_exc()
            first = str(e).splitlines()[0] if str(e) else ""
            error(f"unexpected {type(e).__name__}: {first} (run with --debug for the traceback)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
