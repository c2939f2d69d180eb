"""One pairing rule for everyone: ``nafcli sr DIR``, ``nafcli eval --task sr`` (a model run, or scoring
restored images) and the Python API (:func:`nafcli.jobs.pairing.pair_folder`) pair the same folder into
the same stereo pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.models import PIPELINE
from typer.testing import CliRunner

from nafcli.cli.main import app
from nafcli.jobs.pairing import pair_folder

WEIGHTS = PIPELINE / "sr-nafssr-x4.pth"
SCALE = 4

pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"{PIPELINE} is absent (../shared)")

#: a folder in every layout pair_folder knows: flat short and long markers (any case), scene sub-folders
VIEWS = [
    "a_L.png", "a_R.png",
    "b_left.png", "b_right.png",
    "c_l.png", "c_R.png",
    "scene1/lr0.png", "scene1/lr1.png",
    "scene2/hr1.png", "scene2/hr0.png",
]  # fmt: skip


def _cli(*args: str | Path):  # noqa: ANN202
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """DIR: small random views (24x32); TARGETS: the same layout, each view upscaled x4."""
    src, tgt = tmp_path / "dir", tmp_path / "targets"
    rng = np.random.default_rng(0)
    for rel in VIEWS:
        img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        for root, pixels in ((src, img), (tgt, cv2.resize(img, (32 * SCALE, 24 * SCALE),
                                                          interpolation=cv2.INTER_CUBIC))):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / rel), pixels)
    return src, tgt


def _key(left: str | Path, right: str | Path, root: Path) -> tuple[str, str]:
    """A pair as paths relative to the folder that was paired (resolved, so any spelling compares)."""
    return tuple(Path(p).resolve().relative_to(root.resolve()).as_posix() for p in (left, right))  # type: ignore[return-value]


def test_sr_eval_and_the_api_pair_a_folder_identically(folders: tuple[Path, Path], tmp_path: Path) -> None:
    src, tgt = folders
    api = [_key(p.left, p.right, src) for p in pair_folder(src).pairs]
    assert sorted(api) == [
        ("a_L.png", "a_R.png"), ("b_left.png", "b_right.png"), ("c_l.png", "c_R.png"),
        ("scene1/lr0.png", "scene1/lr1.png"), ("scene2/hr0.png", "scene2/hr1.png"),
    ]  # fmt: skip
    assert pair_folder(src).unmatched == []

    # nafcli sr DIR: one JSON record per pair it ran
    out = tmp_path / "out"
    sr = _cli("sr", src, "-w", WEIGHTS, "-d", "cpu", "-o", out, "--json")
    records = [json.loads(line) for line in sr.stdout.splitlines()]
    assert all(r["status"] == "done" for r in records)
    by_sr = [_key(*r["input"], src) for r in records]
    assert sorted(by_sr) == sorted(api) and len(by_sr) == len(set(by_sr))

    # nafcli eval --task sr with the model: the pairs of inputs it restored and scored
    run = json.loads(_cli("eval", "--task", "sr", "--weights", WEIGHTS, "--input", src, "--target", tgt,
                          "-d", "cpu", "--json", "-q").stdout)
    by_eval_run = [_key(*item["source"], src) for item in run["images"]]
    assert run["stereo"] and sorted(by_eval_run) == sorted(api) and len(by_eval_run) == len(api)
    # each pair scored against the target pair of the same layout
    assert all(_key(*item["target"], tgt) == _key(*item["source"], src) for item in run["images"])

    # nafcli eval --task sr --restored: sr's outputs arranged as the inputs are named
    restored = tmp_path / "restored"
    for r in records:
        for view, output in zip(r["input"], r["output"], strict=True):
            dst = restored / Path(view).resolve().relative_to(src.resolve())
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(output, dst)
    scored = json.loads(_cli("eval", "--task", "sr", "--restored", restored, "--target", tgt, "--json",
                             "-q").stdout)
    by_eval_restored = [_key(*item["source"], restored) for item in scored["images"]]
    assert sorted(by_eval_restored) == sorted(api) and len(by_eval_restored) == len(api)
    # scoring sr's files gives what the model run scored: the same pairs, the same views in each
    by_name = {item["name"]: item for item in run["images"]}
    for item in scored["images"]:
        assert item["psnr"] == pytest.approx(by_name[item["name"]]["psnr"], abs=1e-6)
