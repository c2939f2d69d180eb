"""`nafcli eval` on real photographs: pairing, stereo, the model path, JSON/CSV, errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.models import PIPELINE, SHARED
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from nafcli.cli.main import app

runner = CliRunner()
SAMPLES = SHARED / "samples"


def _rgb(p: Path) -> np.ndarray:
    return cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1]


def _sk(restored: Path, target: Path) -> tuple[float, float]:
    a, b = _rgb(restored), _rgb(target)
    return (
        peak_signal_noise_ratio(b, a, data_range=255),
        structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                              data_range=255, channel_axis=2),
    )


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def mono_dirs(shared, tmp_path: Path) -> tuple[Path, Path]:
    """restored/ = the authors' published outputs, target/ = the demo inputs, same stems."""
    restored, target = tmp_path / "restored", tmp_path / "target"
    restored.mkdir()
    target.mkdir()
    for stem, out in [("noisy", "noisy.nafnet-sidd-width64.png"), ("blurry-gopro", "blurry-gopro.nafnet-gopro-width64.png")]:
        shutil.copy(SAMPLES / out, restored / f"{stem}.png")
        shutil.copy(SAMPLES / f"{stem}.png", target / f"{stem}.png")
    return restored, target


def test_restored_scores_match_scikit_image(mono_dirs, tmp_path: Path):
    restored, target = mono_dirs
    csv_path = tmp_path / "scores.csv"
    data = _json(runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target), "--json",
                                     "--csv", str(csv_path)]))
    assert data["count"] == 2
    by_name = {it["name"]: it for it in data["images"]}
    for stem in ("noisy", "blurry-gopro"):
        p, s = _sk(restored / f"{stem}.png", target / f"{stem}.png")
        assert abs(by_name[stem]["psnr"] - p) < 0.01
        assert abs(by_name[stem]["ssim"] - s) < 1e-4
    assert data["mean"]["psnr"] == pytest.approx(np.mean([it["psnr"] for it in data["images"]]), abs=1e-5)
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["name"] for r in rows] == ["blurry-gopro", "noisy", "mean"]
    assert float(rows[1]["psnr"]) == pytest.approx(by_name["noisy"]["psnr"], abs=1e-5)
    assert float(rows[2]["ssim"]) == pytest.approx(data["mean"]["ssim"], abs=1e-5)


def test_table_on_stdout_and_nafcli_suffix_is_paired(mono_dirs):
    restored, target = mono_dirs
    (restored / "noisy.png").rename(restored / "noisy_denoised.png")
    result = runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["image", "PSNR"]
    assert lines[-1].startswith("mean (2)")
    p, _ = _sk(restored / "noisy_denoised.png", target / "noisy.png")
    row = next(ln for ln in lines if ln.startswith("noisy"))
    assert float(row.split()[1]) == pytest.approx(p, abs=1e-4)


def test_missing_target_is_an_error(mono_dirs):
    restored, target = mono_dirs
    (target / "noisy.png").unlink()
    result = runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target)])
    assert result.exit_code == 2
    assert "no target for 'noisy'" in result.stderr


def test_size_mismatch_names_the_files(mono_dirs):
    restored, target = mono_dirs
    cv2.imwrite(str(restored / "noisy.png"), np.zeros((20, 30, 3), np.uint8))
    result = runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target)])
    assert result.exit_code != 0
    assert "noisy.png" in result.stderr and "30x20" in result.stderr


@pytest.mark.parametrize("args", [[], ["--weights", "x.pth", "--restored", "."], ["--restored", ".", "--input", "."],
                                  ["--weights", "x.pth"]])
def test_source_options_are_validated(args, tmp_path: Path):
    result = runner.invoke(app, ["eval", "--target", str(tmp_path), *args])
    assert result.exit_code == 2
    assert "error:" in result.stderr


def _stereo_flat(tmp_path: Path) -> tuple[Path, Path]:
    """restored/ = the small NAFSSR's outputs, target/ = the authors' NAFSSR-L outputs, as NAME_L/_R."""
    restored, target = tmp_path / "restored", tmp_path / "target"
    restored.mkdir()
    target.mkdir()
    for side, s in (("L", "l"), ("R", "r")):
        shutil.copy(PIPELINE / f"sr-nafssr-x4.lr_img_{s}.png", restored / f"scene_{side}.png")
        shutil.copy(SAMPLES / f"lr_img_{s}.nafssr-l-x4.png", target / f"scene_{side}.png")
    return restored, target


def test_stereo_pairs_are_the_mean_of_both_views(shared, tmp_path: Path):
    restored, target = _stereo_flat(tmp_path)
    data = _json(runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target), "--task", "sr",
                                     "--json"]))
    assert data["stereo"] and data["count"] == 1
    views = [_sk(restored / f"scene_{s}.png", target / f"scene_{s}.png") for s in ("L", "R")]
    assert abs(data["images"][0]["psnr"] - (views[0][0] + views[1][0]) / 2) < 0.01
    assert abs(data["images"][0]["ssim"] - (views[0][1] + views[1][1]) / 2) < 1e-4
    # the authors' stereo SSIM: scikit-image defaults on the two views stacked
    six = _json(runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target), "--task", "sr",
                                    "--ssim", "authors", "--json"]))
    a = np.dstack([_rgb(restored / "scene_L.png"), _rgb(restored / "scene_R.png")])
    b = np.dstack([_rgb(target / "scene_L.png"), _rgb(target / "scene_R.png")])
    assert abs(six["images"][0]["ssim"] - structural_similarity(b, a, data_range=255, channel_axis=2)) < 1e-4


def test_stereo_folder_per_scene_layout(shared, tmp_path: Path):
    restored, target = _stereo_flat(tmp_path)
    flat = _json(runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(target), "--task", "sr",
                                     "--json"]))
    scenes = tmp_path / "hr" / "scene"
    scenes.mkdir(parents=True)
    shutil.copy(target / "scene_L.png", scenes / "hr0.png")
    shutil.copy(target / "scene_R.png", scenes / "hr1.png")
    nested = _json(runner.invoke(app, ["eval", "--restored", str(restored), "--target", str(tmp_path / "hr"),
                                       "--task", "sr", "--json"]))
    assert nested["images"][0]["psnr"] == flat["images"][0]["psnr"]
    assert nested["images"][0]["target"][0].endswith("hr0.png")


def test_model_run_scores_the_pipeline_output(shared, tmp_path: Path):
    """With weights, eval restores each input as `nafcli denoise` does and scores it."""
    inp, target = tmp_path / "in", tmp_path / "gt"
    inp.mkdir()
    target.mkdir()
    shutil.copy(SAMPLES / "noisy.png", inp / "noisy.png")
    shutil.copy(SAMPLES / "noisy.nafnet-sidd-width64.png", target / "noisy.png")
    w = str(PIPELINE / "denoise-nafnet.pth")
    data = _json(runner.invoke(app, ["eval", "--weights", w, "--input", str(inp), "--target", str(target),
                                     "--task", "denoise", "-d", "cpu", "--json"]))
    # our output equals the authors' pipeline output (reference) to within rounding
    p, s = _sk(PIPELINE / "denoise-nafnet.noisy.png", target / "noisy.png")
    assert abs(data["images"][0]["psnr"] - p) < 0.05
    assert abs(data["images"][0]["ssim"] - s) < 1e-3
    unrounded = _json(runner.invoke(app, ["eval", "--weights", w, "--input", str(inp), "--target", str(target),
                                          "-d", "cpu", "--float", "--json"]))
    assert unrounded["quantized"] is False
    assert 0 < abs(unrounded["mean"]["psnr"] - data["mean"]["psnr"]) < 0.5


def test_stereo_model_run(shared, tmp_path: Path):
    inp, target = tmp_path / "in", tmp_path / "gt"
    inp.mkdir()
    target.mkdir()
    for side, s in (("L", "l"), ("R", "r")):
        shutil.copy(SAMPLES / f"lr_img_{s}.png", inp / f"pair_{side}.png")
        shutil.copy(PIPELINE / f"sr-nafssr-x4.lr_img_{s}.png", target / f"pair_{side}.png")
    data = _json(runner.invoke(app, ["eval", "--weights", str(PIPELINE / "sr-nafssr-x4.pth"), "--input", str(inp),
                                     "--target", str(target), "--task", "sr", "-d", "cpu", "--json"]))
    assert data["stereo"] and data["count"] == 1
    assert data["mean"]["psnr"] > 50  # the reference outputs, reproduced to within rounding
    bad = runner.invoke(app, ["eval", "--weights", str(PIPELINE / "sr-nafssr-x4.pth"), "--input", str(inp),
                              "--target", str(target), "--task", "denoise", "-d", "cpu"])
    assert bad.exit_code == 2
