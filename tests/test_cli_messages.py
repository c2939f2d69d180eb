"""--debug before or after the subcommand; the --max-pixels message true to its digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS
from PIL import Image
from typer.testing import CliRunner

from nafcli.cli.main import _debug_first, app
from nafcli.errors import ImageTooLargeError
from nafcli.imaging.read import check_pixels, megapixels_apart


@pytest.mark.parametrize("where", ["before", "after", "last"])
def test_debug_is_taken_anywhere_before_a_double_dash(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAFCLI_DEBUG", raising=False)
    monkeypatch.delenv("NAFCLI_WEIGHTS_TOML", raising=False)
    args = {"before": ["--debug", "denoise", "x.png", "-m", "nope"],
            "after": ["denoise", "--debug", "x.png", "-m", "nope"],
            "last": ["denoise", "x.png", "-m", "nope", "--debug"]}[where]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert "Traceback" in r.stderr and "error: unknown model 'nope'" in r.stderr
    plain = CliRunner().invoke(app, ["denoise", "x.png", "-m", "nope"])
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr


def test_debug_after_a_double_dash_is_an_argument() -> None:
    assert _debug_first(["denoise", "--", "--debug"]) == ["denoise", "--", "--debug"]
    assert _debug_first(["models", "list", "--debug"]) == ["--debug", "models", "list"]


@pytest.mark.parametrize(("pixels", "limit", "said"), [
    (1100, 1000, ("0.0011 MP", "0.0010 MP")),
    (2500, 1000, ("0.003 MP", "0.001 MP")),
    (250_000_000, 200_000_000, ("250.0 MP", "200.0 MP")),
    (200_000_001, 200_000_000, ("200.000001 MP", "200.000000 MP")),
    (2_000_000_001, 2_000_000_000, ("2000.000001 MP", "2000.000000 MP")),
    (10, 1, ("0.000010 MP", "0.000001 MP")),
])
def test_megapixels_are_shown_with_digits_enough_to_be_true(pixels: int, limit: int, said: tuple[str, str]) -> None:
    assert megapixels_apart(pixels, limit) == said
    size, cap = (float(s.split()[0]) for s in said)
    assert size > cap > 0


def test_the_max_pixels_message(tmp_path: Path) -> None:
    with pytest.raises(ImageTooLargeError, match=r"40x25 is 0.0010 MP, above the limit of 0.0009 MP"):
        check_pixels("x.png", 40, 25, 900)
    src = tmp_path / "p.png"
    Image.fromarray(np.zeros((25, 40, 3), np.uint8)).save(src)
    r = CliRunner().invoke(app, ["denoise", str(src), "-w", str(TINY_WEIGHTS), "--max-pixels", "999", "-d", "cpu"])
    assert r.exit_code == 1
    assert "40x25 is 0.001000 MP, above the limit of 0.000999 MP" in r.stderr
