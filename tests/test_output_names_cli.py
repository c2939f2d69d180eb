"""Output names on the real commands: the input's extension keeps its spelling, ``--name`` templates on
denoise, deblur and sr, and the collision that ``--format png`` makes of ``img.png`` + ``img.jpg``
answered with advice that works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS, photo
from helpers.models import PIPELINE
from PIL import Image as PILImage
from typer.testing import CliRunner

from nafcli.cli.main import app

SR_WEIGHTS = PIPELINE / "sr-nafssr-x4.pth"
DEBLUR_WEIGHTS = PIPELINE / "deblur-nafnet-local.pth"

pytestmark = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")


def _cli(*args: str | Path):  # noqa: ANN202
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "shots"
    folder.mkdir()
    rgb = PILImage.fromarray(photo(h=24, w=32))
    rgb.save(folder / "img.png")
    rgb.save(folder / "img.jpg", quality=95)
    rgb.save(folder / "IMG_0042.JPG", quality=95)
    rgb.save(folder / "chelsea.tiff")
    return folder


def test_outputs_keep_the_spelling_of_the_inputs_extension(shots: Path) -> None:
    result = _cli("denoise", shots / "IMG_0042.JPG", shots / "chelsea.tiff", "-w", TINY_WEIGHTS, "-d", "cpu")
    assert result.exit_code == 0, result.output
    assert (shots / "IMG_0042_denoised.JPG").is_file() and (shots / "chelsea_denoised.tiff").is_file()
    assert result.stdout.split() == [str(shots / "IMG_0042_denoised.JPG"), str(shots / "chelsea_denoised.tiff")]
    with PILImage.open(shots / "IMG_0042_denoised.JPG") as im:
        assert im.format == "JPEG"
    with PILImage.open(shots / "chelsea_denoised.tiff") as im:
        assert im.format == "TIFF"


def test_a_collision_suggests_name_and_name_resolves_it(shots: Path) -> None:
    clash = _cli("denoise", shots / "img.png", shots / "img.jpg", "-w", TINY_WEIGHTS, "-d", "cpu", "--format", "png")
    assert clash.exit_code == 1
    errors = [line for line in clash.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is also the output of" in errors[0]
    assert "--name '{stem}_{ext}{suffix}'" in errors[0] and "--format or -o" not in errors[0]
    apart = _cli("denoise", shots / "img.png", shots / "img.jpg", "-w", TINY_WEIGHTS, "-d", "cpu", "--format",
                 "png", "--name", "{stem}_{ext}{suffix}", "--overwrite", "--json")
    assert apart.exit_code == 0, apart.output
    outputs = [json.loads(line)["output"] for line in apart.stdout.splitlines()]
    assert outputs == [str(shots / "img_png_denoised.png"), str(shots / "img_jpg_denoised.png")]
    assert all(Path(p).is_file() for p in outputs)
    # a re-run over the folder takes neither these outputs nor the default ones for inputs
    again = _cli("denoise", shots, "-w", TINY_WEIGHTS, "-d", "cpu", "--format", "png", "--name",
                 "{stem}_{ext}{suffix}", "--json")
    inputs = sorted(Path(json.loads(line)["input"]).name for line in again.stdout.splitlines())
    assert inputs == ["IMG_0042.JPG", "chelsea.tiff", "img.jpg", "img.png"]


def test_name_with_the_model_and_a_bad_template(shots: Path) -> None:
    result = _cli("denoise", shots / "img.png", "-w", TINY_WEIGHTS, "-d", "cpu", "--name", "{stem}.{model}")
    assert result.exit_code == 0, result.output
    assert (shots / f"img.{TINY_WEIGHTS.stem}.png").is_file()
    bad = _cli("denoise", shots / "img.png", "-w", TINY_WEIGHTS, "-d", "cpu", "--name", "{stem}{size}")
    assert bad.exit_code == 2 and "unknown field {size}" in bad.stderr
    assert not list(shots.glob("*size*"))


@pytest.mark.skipif(not DEBLUR_WEIGHTS.is_file(), reason="../shared/reference/pipeline is not here")
def test_deblur_takes_name(shots: Path) -> None:
    result = _cli("deblur", shots / "img.jpg", "-w", DEBLUR_WEIGHTS, "-d", "cpu", "--name", "sharp-{stem}")
    assert result.exit_code == 0, result.output
    assert (shots / "sharp-img.jpg").is_file()


@pytest.mark.skipif(not SR_WEIGHTS.is_file(), reason="../shared/reference/pipeline is not here")
def test_sr_takes_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for side in ("L", "R"):
        PILImage.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(tmp_path / f"p_{side}.png")
    result = _cli("sr", tmp_path / "p_L.png", tmp_path / "p_R.png", "-w", SR_WEIGHTS, "-d", "cpu", "--name",
                  "{stem}{suffix}_{ext}", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["output"] == [str(tmp_path / "p_L_sr_png.png"), str(tmp_path / "p_R_sr_png.png")]
