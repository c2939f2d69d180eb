"""Atomic writes and the temporary files writers leave when they are killed (nafcli.imaging.files).

A writer killed half-way leaves its ``.NAME.nafcli.part`` file; the next write of that output (a re-run, or
a Ray worker retrying the job of a killed one) takes it over, so no stale temporary file outlives the
output's next write. A temporary file another live writer holds (its lock) is never touched.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nafcli.imaging.files import atomic_write_bytes, temp_path


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_temporary_file_of_a_killed_writer_is_taken_over_by_the_next_write(tmp_path: Path) -> None:
    out = tmp_path / "photo_denoised.png"
    # a writer that dies (SIGKILL) with half its file written, its temporary file locked
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        import nafcli.imaging.files as files
        real_replace = os.replace
        def die(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)
        files.os.replace = die
        files.atomic_write_bytes(Path(sys.argv[1]), b"half of it")
    """)
    dead = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, timeout=120)
    assert dead.returncode == -signal.SIGKILL
    assert _hidden(tmp_path) == [".photo_denoised.png.nafcli.part"] and not out.exists()

    atomic_write_bytes(out, b"the whole output")
    assert out.read_bytes() == b"the whole output"
    assert _hidden(tmp_path) == []  # the stale file is gone: it became the output


def test_a_temporary_file_a_live_writer_holds_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    busy = temp_path(out)
    busy.write_bytes(b"another run is writing this")
    with open(busy, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the other run's writer holds it
        atomic_write_bytes(out, b"ours")
        assert out.read_bytes() == b"ours"
        assert busy.read_bytes() == b"another run is writing this"  # untouched: written beside it
        assert _hidden(tmp_path) == [busy.name]  # and our own random temporary file was renamed away


def test_a_link_under_the_temporary_name_redirects_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    out = tmp_path / "x.png"
    os.symlink(victim, temp_path(out))
    atomic_write_bytes(out, b"ours")
    assert out.read_bytes() == b"ours" and victim.read_bytes() == b"keep me"
    assert temp_path(out).is_symlink()


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nafcli.imaging.files as files
    from nafcli.errors import ImageWriteError

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(ImageWriteError, match=r"x\.png: cannot write \(No space left on device\)$"):
        atomic_write_bytes(tmp_path / "x.png", b"data")
    assert list(tmp_path.iterdir()) == []
