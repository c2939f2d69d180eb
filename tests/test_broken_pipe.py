"""A reader that closes stdout early (``| head``, ``| true``) ends every command quietly: no message, no
traceback, exit 141 (what a shell shows for a process killed by SIGPIPE), and a batch keeps what it had
written whole. Real subprocesses with a real pipe: the read end is closed before the command writes, or
after its first line, as ``head -1`` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS
from PIL import Image

SIGPIPE_EXIT = 141


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "NAFCLI_"))}
    env.update(HF_HOME=str(tmp / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    return env


def _closed_reader(args: list[str], tmp: Path, lines: int = 0) -> tuple[int, str]:
    """Run ``nafcli args`` with stdout a pipe whose reader reads ``lines`` lines, then closes it."""
    p = subprocess.Popen([sys.executable, "-m", "nafcli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(tmp), cwd=tmp)
    assert p.stdout is not None and p.stderr is not None
    for _ in range(lines):
        p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    return p.wait(timeout=120), err


def _png(path: Path, seed: int) -> Path:
    Image.fromarray((np.random.default_rng(seed).random((24, 32, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("args", [
    ["models", "list", "--json"],
    ["models", "list"],  # a rich table: rich's own broken-pipe exit is turned into the same 141
    ["--version"],
    ["eval", "--restored", "{pics}", "--target", "{pics}", "--json", "-q"],
], ids=["models-list-json", "models-list-table", "version", "eval-json"])
def test_a_closed_reader_ends_quietly_with_141(args: list[str], tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    _png(pics / "a.png", 0)
    code, err = _closed_reader([a.format(pics=pics) for a in args], tmp_path)
    assert code == SIGPIPE_EXIT, err
    assert err == ""


def _whole(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
            return im.size == (32, 24)
    except OSError:
        return False


def test_a_batch_stops_at_the_closed_pipe_and_keeps_what_it_wrote(tmp_path: Path, shared: Path) -> None:
    """Records stop at once; what was computed is written whole (the writer drains its queue first);
    nothing is half-written; a re-run does the rest."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        _png(folder / f"p{i}.png", i)
    args = ["denoise", str(folder), "-w", str(TINY_WEIGHTS), "-d", "cpu", "--json"]
    code, err = _closed_reader(args, tmp_path)
    assert code == SIGPIPE_EXIT and err == ""
    outputs = sorted(folder.glob("*_denoised.png"))
    assert outputs, "the first output is written before its record is printed"
    assert all(_whole(p) for p in outputs)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "a temporary file was left"

    # `| head -1`: the first record is read, then the reader goes; 0 if the rest was already in the pipe
    code, err = _closed_reader([*args, "--overwrite"], tmp_path, lines=1)
    assert code in (0, SIGPIPE_EXIT) and err == ""

    from typer.testing import CliRunner

    from nafcli.cli.main import app

    again = CliRunner().invoke(app, args)  # in this process: the same command, without another torch start
    assert again.exit_code == 0, again.output
    assert len(list(folder.glob("*_denoised.png"))) == 4
    assert all(_whole(p) for p in folder.glob("*_denoised.png"))
