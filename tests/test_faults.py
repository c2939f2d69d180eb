"""Faults a batch survives, held: kill -9 mid-batch then a re-run, two runs on one output folder at once, a
full disk. Real processes on tiny images with the tiny reference weights; nothing is timed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS
from helpers.runs import visible, whole
from PIL import Image

SIZE = (64, 80)  # rows, columns


def _inputs(folder: Path, count: int) -> list[Path]:
    """Noisy photos-to-be (random pixels: their PNGs hardly compress, so a small disk fills up)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        paths.append(folder / f"img{i:02d}.png")
        Image.fromarray((rng.random((*SIZE, 3)) * 255).astype(np.uint8)).save(paths[-1])
    return paths


def _command(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nafcli", "denoise", str(inputs), "-o", str(out), "-w", str(TINY_WEIGHTS),
            "-d", "cpu", "--tile", "0", *extra]  # not a terminal: no progress bar; the summary stays


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "NAFCLI_"))}


def test_kill_9_mid_batch_then_a_rerun_leaves_exactly_the_complete_outputs(tmp_path: Path, shared: Path) -> None:
    inputs = _inputs(tmp_path / "in", 8)
    out = tmp_path / "out"
    expected = [out / f"{p.stem}_denoised.png" for p in inputs]
    proc = subprocess.Popen(_command(tmp_path / "in", out), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(out.glob("*_denoised.png"))):
            assert proc.poll() is None, "the batch ended before its first output showed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    survivors = visible(out)
    assert 1 <= len(survivors) < len(expected), "killed mid-batch"
    assert all(p in expected and whole(p, SIZE) for p in survivors), survivors

    rerun = subprocess.run(_command(tmp_path / "in", out), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(survivors)} skipped" in rerun.stderr  # what was whole is kept, not redone
    assert visible(out) == expected and all(whole(p, SIZE) for p in expected)
    # a file being written at the kill can leave a hidden temporary file; never a visible partial one
    assert all(p.name.endswith(".part") for p in out.iterdir() if p.name.startswith("."))


def test_two_runs_on_one_output_folder_at_once_both_finish_whole(tmp_path: Path, shared: Path) -> None:
    inputs = _inputs(tmp_path / "in", 4)
    out = tmp_path / "out"
    procs = [subprocess.Popen(_command(tmp_path / "in", out), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    for (_stdout, stderr), code in results:
        assert code == 0, stderr
        assert "error" not in stderr
    expected = [out / f"{p.stem}_denoised.png" for p in inputs]
    assert [p for p in out.iterdir()] and sorted(out.iterdir()) == expected  # no temporary file either
    assert all(whole(p, SIZE) for p in expected)


# -- a full disk: a small tmpfs mounted over the output folder, in a mount namespace of its own ---------

_DRIVER = r"""
import json, subprocess, sys
from pathlib import Path
from PIL import Image
out = Path(sys.argv[1])
r = subprocess.run(sys.argv[2:], capture_output=True, text=True)
files = {}
for p in sorted(out.iterdir()):
    try:
        with Image.open(p) as im:
            im.load()
            files[p.name] = list(im.size)
    except OSError:
        files[p.name] = None
print(json.dumps({"code": r.returncode, "stderr": r.stderr, "files": files}))
"""


def _namespace_prefix(scratch: Path) -> list[str] | None:
    """``unshare`` arguments that give a private mount namespace where mounting a tmpfs is allowed (root:
    ``-m``; otherwise a user namespace ``-rm``), or None when neither works here. The mount vanishes with
    the namespace, so nothing is left mounted whatever happens to the test."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    scratch.mkdir()
    for flags in (["-m"], ["-rm"]):
        probe = subprocess.run(["unshare", *flags, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(scratch)],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["unshare", *flags]
    return None


def test_a_full_disk_fails_each_file_in_one_line_and_leaves_no_partial_file(tmp_path: Path, shared: Path) -> None:
    prefix = _namespace_prefix(tmp_path / "probe")
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here (needs unshare and root or user namespaces)")
    inputs = _inputs(tmp_path / "in", 4)
    out = tmp_path / "out"
    out.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    each = (out.parent / "in" / "img00.png").stat().st_size
    size_kb = (2 * each + each // 2) // 1024  # room for two outputs and a half: the third fills the disk
    script = 'mount -t tmpfs -o size="$1"k tmpfs "$2" && shift 2 && exec "$@"'
    r = subprocess.run([*prefix, "sh", "-c", script, "sh", str(size_kb), str(out), sys.executable, str(driver),
                        str(out), *_command(tmp_path / "in", out)],
                       capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    files = report["files"]
    written = [name for name, size in files.items() if not name.startswith(".")]
    assert not [name for name in files if name.startswith(".")], files  # no temporary file left
    assert all(files[name] == [SIZE[1], SIZE[0]] for name in written), files  # every output whole
    failed = len(inputs) - len(written)
    assert report["code"] == 1 and failed >= 1, report
    errors = [ln for ln in report["stderr"].splitlines() if ln.startswith("error:")]
    assert len(errors) == failed, report["stderr"]  # one line per failed file
    assert all("No space left on device" in ln for ln in errors), errors
    assert f"{failed} failed" in report["stderr"] and "Traceback" not in report["stderr"]
