"""Comparing two runs of one batch (local against --device all, --shard or --ray): what they wrote, their
--json records and their summaries, less what must differ (timings, the output folder's name)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from nafcli.cli.main import app


def cli(*args: str | Path):  # noqa: ANN201
    """``nafcli ARGS`` in this process; stdout and stderr apart."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def written(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` (hidden ones too: a temporary file left behind shows) by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def records(stdout: str, out: Path) -> list[dict[str, Any]]:
    """The --json records, ``seconds`` dropped and the output folder written as ``OUT`` (in ``output`` and
    in messages)."""
    found = []
    for line in stdout.splitlines():
        record = json.loads(line.replace(json.dumps(str(out))[1:-1], "OUT"))
        record.pop("seconds")
        found.append(record)
    return found


def summary(stderr: str) -> str:
    """The summary line less its timings: ``3 done, 1 skipped (output exists), 1 failed``."""
    line = stderr.strip().splitlines()[-1]
    return re.sub(r" in [0-9.]+ s( \([0-9.]+ MP/s\))?", "", line)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def whole(path: Path, size: tuple[int, int]) -> bool:
    """The image file decodes completely, at ``size`` (rows, columns): not a half-written one."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.size == (size[1], size[0])
    except OSError:
        return False


def visible(folder: Path) -> list[Path]:
    """The files of ``folder`` less hidden ones (temporary files are hidden)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
