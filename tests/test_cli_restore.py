"""The denoise/deblur commands on real files: the authors' demo pipeline end to end, naming, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.models import PIPELINE, SHARED
from typer.testing import CliRunner

from nafcli.cli.main import app

runner = CliRunner()


def _task(case: str) -> str:
    return case.split("-")[0]


@pytest.mark.parametrize("case", ["denoise-nafnet", "deblur-nafnet-local"])
def test_end_to_end_parity_with_the_authors_demo(case, pipeline_index, tmp_path: Path):
    c = pipeline_index[case]
    src = SHARED / c["inputs"][0]
    out = tmp_path / "out.png"
    result = runner.invoke(app, [_task(case), str(src), "--weights", str(PIPELINE / c["weights"]),
                                 "-o", str(out), "--device", "cpu", "--tile", "0"])
    assert result.exit_code == 0, result.output
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED).astype(int)
    want = cv2.imread(str(PIPELINE / c["outputs"][0]), cv2.IMREAD_UNCHANGED).astype(int)
    assert got.shape == want.shape
    diff = np.abs(got - want)
    assert (diff == 0).mean() >= 0.999
    assert diff.max() <= 1


def test_default_output_goes_beside_the_input(tmp_path: Path, tiny_nafnet_pth):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    for task, name in [("denoise", "photo_denoised.png"), ("deblur", "photo_deblurred.png")]:
        result = runner.invoke(app, [task, str(src), "-w", str(tiny_nafnet_pth), "-d", "cpu"])
        assert result.exit_code == 0, result.output
        out = tmp_path / name
        assert cv2.imread(str(out)).shape == (20, 30, 3)


def test_input_is_never_overwritten(tmp_path: Path, tiny_nafnet_pth):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.zeros((8, 8, 3), np.uint8))
    before = src.read_bytes()
    result = runner.invoke(app, ["denoise", str(src), "-w", str(tiny_nafnet_pth), "-o", str(src)])
    assert result.exit_code != 0
    assert src.read_bytes() == before


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nafcli", *args], capture_output=True, text=True, timeout=120)


def test_missing_image_is_one_line_exit_1(tmp_path: Path, tiny_nafnet_pth):
    r = _run("denoise", str(tmp_path / "absent.png"), "-w", str(tiny_nafnet_pth))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "absent.png" in errors[0]


def test_unreadable_image_is_one_line_exit_1(tmp_path: Path, tiny_nafnet_pth):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    r = _run("deblur", str(bad), "-w", str(tiny_nafnet_pth), "-o", str(tmp_path / "o.png"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "bad.png" in errors[0]
    assert not (tmp_path / "o.png").exists()


def test_bad_weights_file_is_one_line_exit_1(tmp_path: Path, shared):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"\x80\x04garbage")
    src = tmp_path / "in.png"
    shutil.copy(shared / "samples" / "noisy.png", src)
    r = _run("denoise", str(src), "-w", str(weights))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "w.pth" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "in_denoised.png").exists()


def test_unknown_device_and_missing_cuda(tmp_path: Path, tiny_nafnet_pth):
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.zeros((8, 8, 3), np.uint8))
    r = _run("denoise", str(src), "-w", str(tiny_nafnet_pth), "--device", "tpu")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if not has_cuda:
        r = _run("denoise", str(src), "-w", str(tiny_nafnet_pth), "--device", "cuda")
        assert r.returncode == 2 and "CUDA is not available" in r.stderr


def test_python_dash_m_and_version():
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.startswith("nafcli ")
