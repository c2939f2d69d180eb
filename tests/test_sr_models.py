"""``nafcli sr`` with registry models: --model, the stereo-sr default, --scale, models import, --offline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.models import PIPELINE
from typer.testing import CliRunner

from nafcli.cli.main import app

WEIGHTS = PIPELINE / "sr-nafssr-x4.pth"
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with a tiny x4 stereo model (the stereo-sr default) and a tiny x2 one, cache in tmp."""
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is absent (../shared)")
    entry = 'task = "stereo-sr"\narch = "nafssr"\ntlc = true\nwidth = 16\nnum_blks = 3\n'
    (tmp_path / "w.toml").write_text(
        f'[models.tiny-sr-x4]\n{entry}up_scale = 4\nscale = 4\nfile = "TINY_4x.pth"\ndefault = true\n'
        'url = "https://example.org/x4"\n'
        f'\n[models.tiny-sr-x2]\n{entry}up_scale = 2\nscale = 2\nfile = "TINY_2x.pth"\n'
        'url = "https://example.org/x2"\n'
    )
    monkeypatch.setenv("NAFCLI_WEIGHTS_TOML", str(tmp_path / "w.toml"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "NAFCLI_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for name, seed in (("l.png", 1), ("r.png", 2)):
        rng = np.random.default_rng(seed)
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (20, 28, 3), dtype=np.uint8))
    return tmp_path


def test_imported_model_is_the_default_and_matches_weights_file(env: Path) -> None:
    imp = runner.invoke(app, ["models", "import", str(WEIGHTS), "--as", "tiny-sr-x4"])
    assert imp.exit_code == 0, imp.output
    by_default = runner.invoke(app, ["sr", str(env / "l.png"), str(env / "r.png"), "-o", str(env / "a")])
    assert by_default.exit_code == 0, by_default.output
    by_file = runner.invoke(app, ["sr", str(env / "l.png"), str(env / "r.png"), "-o", str(env / "b"),
                                  "-w", str(WEIGHTS)])
    assert by_file.exit_code == 0, by_file.output
    for name in ("l_sr.png", "r_sr.png"):
        a, b = cv2.imread(str(env / "a" / name)), cv2.imread(str(env / "b" / name))
        assert a.shape == (80, 112, 3) and np.array_equal(a, b)
    assert runner.invoke(app, ["sr", str(env / "l.png"), "--model", "tiny-sr-x4", "-o", str(env / "c"),
                               "--scale", "4"]).exit_code == 0


def test_scale_picks_and_checks_registry_models(env: Path) -> None:
    clash = runner.invoke(app, ["sr", str(env / "l.png"), "--model", "tiny-sr-x4", "--scale", "2"])
    assert clash.exit_code == 2 and "x4 model but --scale 2" in clash.stderr
    # --scale 2 picks the x2 model, which is not downloaded and has no hub copy: a clear error
    missing = runner.invoke(app, ["sr", str(env / "l.png"), "--scale", "2", "--offline"])
    assert missing.exit_code != 0 and "tiny-sr-x2" in missing.stderr
    assert "Traceback" not in missing.output


def test_unknown_model_id(env: Path) -> None:
    r = runner.invoke(app, ["sr", str(env / "l.png"), "--model", "tiny-sr-x3"])
    assert r.exit_code != 0 and "unknown model" in r.stderr
