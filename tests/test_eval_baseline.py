"""`nafcli eval` with a model scores the inputs as they are too (the baseline; bicubic-upscaled for SR), in
the table, the progress lines, JSON and CSV; with --restored there is no baseline."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.models import PIPELINE, SHARED
from skimage.metrics import peak_signal_noise_ratio
from typer.testing import CliRunner

from nafcli.cli.main import app

SAMPLES = SHARED / "samples"


def _eval(*args: str | Path):  # noqa: ANN202
    return CliRunner().invoke(app, ["eval", "-d", "cpu", *map(str, args)])


@pytest.fixture
def denoise_set(shared, tmp_path: Path) -> tuple[Path, Path]:
    inp, target = tmp_path / "in", tmp_path / "gt"
    inp.mkdir()
    target.mkdir()
    shutil.copy(SAMPLES / "noisy.png", inp / "noisy.png")
    shutil.copy(SAMPLES / "noisy.nafnet-sidd-width64.png", target / "noisy.png")
    return inp, target


def test_a_model_run_scores_the_input_as_baseline(denoise_set: tuple[Path, Path], tmp_path: Path) -> None:
    inp, target = denoise_set
    w = PIPELINE / "denoise-nafnet.pth"
    csv_path = tmp_path / "s.csv"
    result = _eval("--weights", w, "--input", inp, "--target", target, "--json", "--csv", csv_path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    a = cv2.imread(str(inp / "noisy.png"))[:, :, ::-1]
    b = cv2.imread(str(target / "noisy.png"))[:, :, ::-1]
    expected = peak_signal_noise_ratio(b, a, data_range=255)
    assert data["baseline"]["method"] == "input"
    assert data["images"][0]["baseline"]["psnr"] == pytest.approx(expected, abs=1e-4)
    assert data["baseline"]["psnr"] == pytest.approx(expected, abs=1e-4)
    assert 0 < data["baseline"]["ssim"] < 1
    assert data["images"][0]["source"] == str(inp / "noisy.png")  # mono: a path, not a list
    assert "(input: " in result.stderr  # the progress line shows both
    rows = list(csv.DictReader(csv_path.open()))
    assert float(rows[0]["input_psnr"]) == pytest.approx(expected, abs=1e-4)
    table = _eval("--weights", w, "--input", inp, "--target", target, "-q")
    head, row, mean, gain = table.stdout.splitlines()
    assert head.split() == ["image", "PSNR", "(dB)", "SSIM", "input", "PSNR", "input", "SSIM"]
    restored_psnr, base_psnr = float(row.split()[1]), float(row.split()[3])
    assert base_psnr == pytest.approx(expected, abs=1e-4)
    assert gain.startswith("input: the input as it is against the target; the model adds ")
    assert gain.endswith(f"{restored_psnr - base_psnr:.2f} dB")


def test_super_resolution_baseline_is_bicubic(shared, tmp_path: Path) -> None:
    inp, target = tmp_path / "in", tmp_path / "gt"
    inp.mkdir()
    target.mkdir()
    for side, s in (("L", "l"), ("R", "r")):
        shutil.copy(SAMPLES / f"lr_img_{s}.png", inp / f"pair_{side}.png")
        shutil.copy(PIPELINE / f"sr-nafssr-x4.lr_img_{s}.png", target / f"pair_{side}.png")
    result = _eval("--weights", PIPELINE / "sr-nafssr-x4.pth", "--input", inp, "--target", target, "--task", "sr",
                   "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["baseline"]["method"] == "bicubic"
    views = []
    for side in ("L", "R"):
        lr = cv2.imread(str(inp / f"pair_{side}.png")).astype(np.float64)
        hr = cv2.imread(str(target / f"pair_{side}.png")).astype(np.float64)
        up = np.clip(cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC), 0, 255)
        views.append(peak_signal_noise_ratio(hr, up, data_range=255))
    assert data["images"][0]["baseline"]["psnr"] == pytest.approx(np.mean(views), abs=1e-4)
    assert data["images"][0]["source"] == [str(inp / "pair_L.png"), str(inp / "pair_R.png")]  # a pair: a list


def test_scoring_existing_outputs_has_no_baseline(denoise_set: tuple[Path, Path]) -> None:
    inp, target = denoise_set
    result = _eval("--restored", inp, "--target", target, "--json")
    data = json.loads(result.stdout)
    assert data["baseline"] is None and data["images"][0]["baseline"] is None
    table = _eval("--restored", inp, "--target", target, "-q")
    assert "input" not in table.stdout and len(table.stdout.splitlines()) == 3
