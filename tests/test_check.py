"""`nafcli check`: the shipped demo data, the comparison itself, and the command on a test registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from nafcli.check import PASS_DB, run_check, samples_dir

from .conftest import SHARED

PIPELINE = SHARED / "reference" / "pipeline"
SAMPLES = SHARED / "samples"


def test_demo_images_ship_in_the_package(shared):
    shipped = samples_dir()
    names = sorted(p.name for p in (shared / "samples").iterdir())
    for name in names:
        assert (shipped / name).read_bytes() == (shared / "samples" / name).read_bytes(), name
    assert "megvii-model" in (shipped / "LICENSE").read_text()
    assert "MIT" in (shipped / "README.md").read_text()


def _perturbed(src: Path, dst: Path, scale: float = 0.2) -> Path:
    """The same architecture with different values: loads fine, restores differently."""
    sd = torch.load(src, map_location="cpu", weights_only=True)["params"]
    g = torch.Generator().manual_seed(1)
    torch.save({"params": {k: v + scale * torch.randn(v.shape, generator=g) for k, v in sd.items()}}, dst)
    return dst


def _restorer(weights: Path, tlc: bool | None = None):
    from nafcli.pipeline import Restorer

    return Restorer.from_file(weights, tlc=tlc, device="cpu", tile=0)


def test_run_check_passes_on_the_reference_pipeline_output(pipeline_index):
    c = pipeline_index["denoise-nafnet"]
    r = run_check(_restorer(PIPELINE / c["weights"]), [SHARED / p for p in c["inputs"]],
                  [PIPELINE / p for p in c["outputs"]], model_id="x")
    assert r.status == "pass" and r.ok
    assert r.psnr is not None and r.psnr >= 60  # equal to within rounding


def test_run_check_stereo_scores_each_view(pipeline_index):
    c = pipeline_index["sr-nafssr-x4"]
    r = run_check(_restorer(PIPELINE / c["weights"]), [SHARED / p for p in c["inputs"]],
                  [PIPELINE / p for p in c["outputs"]], model_id="x")
    assert r.status == "pass"
    assert len(r.views) == 2 and min(r.views) >= 60
    assert r.psnr == pytest.approx(sum(r.views) / 2)


def test_run_check_fails_with_wrong_weights(pipeline_index, tmp_path: Path):
    c = pipeline_index["denoise-nafnet"]
    wrong = _perturbed(PIPELINE / c["weights"], tmp_path / "wrong.pth")
    r = run_check(_restorer(wrong), [SHARED / p for p in c["inputs"]], [PIPELINE / p for p in c["outputs"]],
                  model_id="x")
    assert r.status == "fail" and not r.ok
    assert r.psnr is not None and r.psnr < PASS_DB


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()
