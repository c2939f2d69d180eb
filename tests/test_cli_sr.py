"""``nafcli sr`` on the real command: parity with the authors' pipeline, pairing, batch rules, formats."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.models import PIPELINE, SHARED
from typer.testing import CliRunner

from nafcli.cli.main import app

WEIGHTS = PIPELINE / "sr-nafssr-x4.pth"

pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"{PIPELINE} is absent (../shared)")


def _sr(*args: str):
    return CliRunner().invoke(app, ["sr", *args])


def _records(result) -> list[dict]:
    """The --json lines (one object per job)."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _status(result) -> dict[str, int]:
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for r in _records(result):
        counts[r["status"]] += 1
    return counts


def _write(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)
    return path


def _rgb(seed: int, h: int = 24, w: int = 32, dtype=np.uint8) -> np.ndarray:
    hi = 65536 if dtype == np.uint16 else 256
    return np.random.default_rng(seed).integers(0, hi, (h, w, 3)).astype(dtype)


@pytest.mark.parametrize("tile", ["0", "auto"])
def test_parity_with_authors_pipeline(tmp_path: Path, tile: str) -> None:
    case = json.loads((PIPELINE / "index.json").read_text())["sr-nafssr-x4"]
    left, right = (SHARED / p for p in case["inputs"])
    result = _sr(str(left), str(right), "-w", str(WEIGHTS), "-o", str(tmp_path), "--tile", tile)
    assert result.exit_code == 0, result.output
    for src, expected in zip((left, right), case["outputs"], strict=True):
        ours = cv2.imread(str(tmp_path / f"{src.stem}_sr.png")).astype(int)
        theirs = cv2.imread(str(PIPELINE / expected)).astype(int)
        assert ours.shape == theirs.shape
        assert (ours == theirs).mean() >= 0.999
        assert np.abs(ours - theirs).max() <= 1


def test_folder_mode_pairs_and_reports_unmatched(tmp_path: Path) -> None:
    d = tmp_path / "in"
    for name, seed in [("a_L.png", 1), ("a_R.png", 2), ("b_left.jpg", 3), ("b_right.jpg", 4), ("c_L.png", 5),
                       ("lonely.png", 6)]:
        _write(d / name, _rgb(seed))
    result = _sr(str(d), "-w", str(WEIGHTS), "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 1  # unmatched files are not a silent success
    records = _records(result)
    done = [r for r in records if r["status"] == "done"]
    failed = {Path(r["input"]).name: r["error"] for r in records if r["status"] == "failed"}
    assert [[Path(p).name for p in r["input"]] for r in done] == [["a_L.png", "a_R.png"],
                                                                  ["b_left.jpg", "b_right.jpg"]]
    assert set(failed) == {"c_L.png", "lonely.png"}
    assert "no right view" in failed["c_L.png"] and "no side marker" in failed["lonely.png"]
    assert "c_L.png" in result.stderr and "lonely.png" in result.stderr
    outs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outs == ["a_L_sr.png", "a_R_sr.png", "b_left_sr.jpg", "b_right_sr.jpg"]  # formats kept
    assert cv2.imread(str(tmp_path / "out" / "a_L_sr.png")).shape == (96, 128, 3)


def test_skip_existing_and_overwrite(tmp_path: Path) -> None:
    _write(tmp_path / "x_L.png", _rgb(1))
    _write(tmp_path / "x_R.png", _rgb(2))
    first = _sr(str(tmp_path), "-w", str(WEIGHTS))
    assert first.exit_code == 0, first.output
    out = tmp_path / "x_L_sr.png"
    out.write_bytes(b"placeholder")
    (tmp_path / "x_R_sr.png").unlink()
    again = _sr(str(tmp_path), "-w", str(WEIGHTS), "--json")
    assert again.exit_code == 0, again.output
    assert _status(again)["done"] == 1  # only one of the two outputs existed: the pair is redone
    assert cv2.imread(str(out)) is not None
    third = _sr(str(tmp_path), "-w", str(WEIGHTS), "--json")
    assert _status(third) == {"done": 0, "skipped": 1, "failed": 0} and third.exit_code == 0
    forced = _sr(str(tmp_path), "-w", str(WEIGHTS), "--json", "--overwrite")
    assert _status(forced)["done"] == 1


def test_two_folders_by_name(tmp_path: Path) -> None:
    _write(tmp_path / "L" / "p.png", _rgb(1))
    _write(tmp_path / "R" / "p.png", _rgb(2))
    _write(tmp_path / "R" / "q.png", _rgb(3))
    result = _sr("--left", str(tmp_path / "L"), "--right", str(tmp_path / "R"), "-w", str(WEIGHTS),
                 "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "q.png: not processed: no left view" in result.stderr
    assert "1 done, 0 skipped, 1 failed" in result.stderr
    assert (tmp_path / "out" / "left" / "p_sr.png").is_file()
    assert (tmp_path / "out" / "right" / "p_sr.png").is_file()


def test_keep_going_past_a_bad_pair(tmp_path: Path) -> None:
    _write(tmp_path / "a_L.png", _rgb(1))
    _write(tmp_path / "a_R.png", _rgb(2, h=20))  # different size
    _write(tmp_path / "b_L.png", _rgb(3))
    _write(tmp_path / "b_R.png", _rgb(4))
    result = _sr(str(tmp_path), "-w", str(WEIGHTS), "--json")
    assert result.exit_code == 1
    assert _status(result) == {"done": 1, "skipped": 0, "failed": 1}
    stop = _sr(str(tmp_path), "-w", str(WEIGHTS), "--json", "--fail-fast", "--overwrite")
    assert _status(stop) == {"done": 0, "skipped": 0, "failed": 1}


def test_pair_of_different_sizes_is_one_line_error(tmp_path: Path) -> None:
    left = _write(tmp_path / "l.png", _rgb(1))
    right = _write(tmp_path / "r.png", _rgb(2, w=30))
    result = _sr(str(left), str(right), "-w", str(WEIGHTS))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "32x24" in lines[0] and "30x24" in lines[0]
    assert "Traceback" not in result.output


def test_single_image_fed_as_both_views(tmp_path: Path) -> None:
    img = _write(tmp_path / "mono.png", _rgb(7))
    result = _sr(str(img), "-w", str(WEIGHTS))
    assert result.exit_code == 0, result.output
    out = cv2.imread(str(tmp_path / "mono_sr.png"))
    assert out.shape == (96, 128, 3)


def test_gray_alpha_16bit(tmp_path: Path) -> None:
    rgba16 = np.dstack([_rgb(1, dtype=np.uint16), np.full((24, 32), 40000, np.uint16)])
    left = _write(tmp_path / "c_L.png", rgba16)
    right = _write(tmp_path / "c_R.png", np.dstack([_rgb(2, dtype=np.uint16), rgba16[:, :, 3]]))
    gray_l = _write(tmp_path / "g" / "g_L.png", _rgb(3)[:, :, 0])
    _write(tmp_path / "g" / "g_R.png", _rgb(4)[:, :, 0])
    assert _sr(str(left), str(right), "-w", str(WEIGHTS)).exit_code == 0
    out = cv2.imread(str(tmp_path / "c_L_sr.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (96, 128, 4)
    assert np.abs(out[:, :, 3].astype(int) - 40000).max() <= 1  # a flat alpha stays flat when resized
    assert _sr(str(gray_l.parent), "-w", str(WEIGHTS)).exit_code == 0
    g = cv2.imread(str(tmp_path / "g" / "g_L_sr.png"), cv2.IMREAD_UNCHANGED)
    assert g.shape == (96, 128) and g.dtype == np.uint8


def test_scale_and_model_checks(tmp_path: Path) -> None:
    img = _write(tmp_path / "m.png", _rgb(1))
    wrong = _sr(str(img), "-w", str(WEIGHTS), "--scale", "2")
    assert wrong.exit_code == 2 and "x4 model but --scale 2" in wrong.stderr
    clash = _sr(str(img), "--model", "nafssr-l-x4", "--scale", "2")
    assert clash.exit_code == 2 and "--scale 2" in clash.stderr
    bad = _sr(str(img), "--scale", "3", "-w", str(WEIGHTS))
    assert bad.exit_code == 2
    mono = _sr(str(img), "-w", str(PIPELINE / "denoise-nafnet.pth"))
    assert mono.exit_code == 2 and "a denoise / deblur model, not for stereo-sr" in mono.stderr
    assert "use 'nafcli denoise'" in mono.stderr


def test_stdout_has_output_paths_only(tmp_path: Path) -> None:
    left = _write(tmp_path / "l.png", _rgb(1))
    right = _write(tmp_path / "r.png", _rgb(2))
    result = _sr(str(left), str(right), "-w", str(WEIGHTS), "--tile", "0")
    assert result.stdout.splitlines() == [str(tmp_path / "l_sr.png"), str(tmp_path / "r_sr.png")]


def test_no_inputs_and_bad_tile(tmp_path: Path) -> None:
    assert _sr().exit_code == 2
    assert _sr(str(tmp_path / "a.png"), "--tile", "big", "-w", str(WEIGHTS)).exit_code == 2
    assert _sr("--left", str(tmp_path)).exit_code == 2


def test_verbose_reports_strips_and_precision_reaches_the_model(tmp_path: Path) -> None:
    left = _write(tmp_path / "a_L.png", _rgb(1, 120, 48))
    right = _write(tmp_path / "a_R.png", _rgb(2, 120, 48))
    whole = _sr(str(left), str(right), "-w", str(WEIGHTS), "-o", str(tmp_path / "w"), "--verbose", "--tile", "0")
    assert whole.exit_code == 0, whole.output
    assert "cpu fp32, whole image" in whole.stderr
    strips = _sr(str(left), str(right), "-w", str(WEIGHTS), "-o", str(tmp_path / "s"), "--verbose",
                 "--tile", "50", "--overlap", "4", "--precision", "bf16")
    assert strips.exit_code == 0, strips.output
    assert "cpu bf16, 3x1 tiles of 48x50 px (overlap 4" in strips.stderr
    a = cv2.imread(str(tmp_path / "w" / "a_L_sr.png")).astype(int)
    b = cv2.imread(str(tmp_path / "s" / "a_L_sr.png")).astype(int)
    assert a.shape == b.shape == (480, 192, 3)
