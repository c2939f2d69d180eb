"""Weights whose layout the registry knows as another task's run with a one-line warning (--quiet hides
it): the SIDD layout for deblurring, the GoPro/REDS layout for denoising. Narrow random networks of the
official layouts (the width does not decide the layout), against the built-in registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.models import random_state_dict
from PIL import Image
from typer.testing import CliRunner

from nafcli.cli.main import app
from nafcli.weights import load

SIDD = {"width": 4, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]}
GOPRO = {"width": 4, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]}
OTHER = {"width": 4, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}


@pytest.fixture(autouse=True)
def builtin_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("fit")
    out = {}
    for name, cfg in (("sidd", SIDD), ("gopro", GOPRO), ("other", OTHER)):
        out[name] = tmp / f"{name}.pth"
        torch.save({"params": random_state_dict("nafnet", cfg, std=0.02)}, out[name])
    return out


def test_the_loader_warns_about_another_tasks_layout(files: dict[str, Path]) -> None:
    (w,) = load(task="deblur", weights=files["sidd"]).warnings
    assert "laid out as nafnet-sidd-width32, trained for denoise, not deblur" in w and "'nafcli denoise'" in w
    (w,) = load(task="denoise", weights=files["gopro"]).warnings
    assert "laid out as nafnet-gopro-width32, trained for deblur, not denoise" in w and "\n" not in w
    assert load(task="denoise", weights=files["sidd"]).warnings == []
    assert load(task="deblur", weights=files["gopro"]).warnings == []
    assert load(task="deblur", weights=files["other"]).warnings == []  # no official model is laid out so
    assert load(weights=files["sidd"]).warnings == []  # no task, nothing to compare


def test_the_command_warns_in_one_line_and_goes_on(files: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)).save(src)
    r = CliRunner().invoke(app, ["deblur", str(src), "-w", str(files["sidd"]), "-d", "cpu", "-o",
                                 str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "trained for denoise, not deblur" in warnings[0]
    assert (tmp_path / "a.png").is_file()
    quiet = CliRunner().invoke(app, ["denoise", str(src), "-w", str(files["gopro"]), "-d", "cpu", "-o",
                                     str(tmp_path / "b.png"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert "warning" not in quiet.stderr and (tmp_path / "b.png").is_file()
