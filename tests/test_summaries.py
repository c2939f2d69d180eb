"""What a run says at its end: why inputs were skipped (counts by reason, names with --verbose), no rate
when nothing ran, images left in sub-folders by a run without -r (once), and nothing but errors with
--quiet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS
from PIL import Image as PILImage
from typer.testing import CliRunner

from nafcli.cli.main import app
from nafcli.cli.render import subfolder_note, summary_line
from nafcli.jobs.discover import discover
from nafcli.jobs.plan import SKIP_EXISTS, Job
from nafcli.jobs.runner import BatchReport, JobResult


def _result(status: str, kind: str | None = None, mp: float = 0.0) -> JobResult:
    job = Job((Path("in.png"),), (Path("out.png"),), skip="out.png exists" if kind else None, skip_kind=kind)
    return JobResult(job, status, error=job.skip, megapixels=mp)


def test_summary_counts_skips_by_reason() -> None:
    report = BatchReport([_result("done", mp=2.0), _result("skipped", SKIP_EXISTS), _result("skipped", SKIP_EXISTS),
                          _result("failed")], seconds=4.0)
    assert summary_line(report) == "1 done, 2 skipped (output exists), 1 failed in 4.0 s (0.50 MP/s)"
    mixed = BatchReport([_result("skipped", SKIP_EXISTS), _result("skipped", "other reason"),
                         _result("skipped", SKIP_EXISTS)], seconds=0.5)
    assert summary_line(mixed) == "0 done, 3 skipped (2 output exists, 1 other reason), 0 failed in 0.5 s"


def test_small_rates_keep_two_significant_digits() -> None:
    """Six thumbnails in 18 s (a Ray start) is 0.0034 MP/s, not 0.00."""
    thumbs = BatchReport([_result("done", mp=0.0102) for _ in range(6)], seconds=18.0)
    assert summary_line(thumbs).endswith("in 18.0 s (0.0034 MP/s)")
    assert summary_line(BatchReport([_result("done", mp=1.0)], seconds=10.0)).endswith("(0.10 MP/s)")
    assert summary_line(BatchReport([_result("done", mp=0.99)], seconds=10.0)).endswith("(0.099 MP/s)")


def test_no_rate_when_nothing_was_done() -> None:
    assert "MP/s" not in summary_line(BatchReport([_result("skipped", SKIP_EXISTS)], seconds=0.2))
    assert "MP/s" not in summary_line(BatchReport([_result("failed")], seconds=0.2))
    assert summary_line(BatchReport([], seconds=0.0)) == "0 done, 0 skipped, 0 failed in 0.0 s"
    stopped = BatchReport([_result("done", mp=1.0)], seconds=2.0, interrupted=True)
    assert summary_line(stopped) == "interrupted: 1 done, 0 skipped, 0 failed in 2.0 s (0.50 MP/s) so far"


def _tree(root: Path) -> Path:
    """2 images at the top, 4 below (one hidden, one an earlier output: 2 + 1 counted), a text file."""
    img = PILImage.fromarray(np.full((16, 24, 3), 90, np.uint8))
    for rel in ("x.png", "y.jpg", "a/1.png", "a/b/2.png", "a/b/3.jpg", "a/.hidden.png", "a/b/4_denoised.png",
                ".git/objects.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel)
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def test_discovery_counts_what_a_run_without_r_leaves_out(tmp_path: Path) -> None:
    root = _tree(tmp_path / "photos")
    flat = discover([root], exclude_suffix="_denoised")
    assert [s.path.name for s in flat] == ["x.png", "y.jpg"] and flat.in_subfolders == 3
    deep = discover([root], recursive=True, exclude_suffix="_denoised")
    assert len(deep) == 5 and deep.in_subfolders == 0
    assert discover([root / "x.png"]).in_subfolders == 0  # files named explicitly leave nothing out
    report = BatchReport(in_subfolders=1)
    assert subfolder_note(report) == "1 image in sub-folders skipped; use -r"


needs_weights = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")


def _denoise(*args: str | Path):  # noqa: ANN202
    return CliRunner().invoke(app, ["denoise", "-w", str(TINY_WEIGHTS), "-d", "cpu", *map(str, args)])


@needs_weights
def test_a_folder_run_says_once_what_it_left_in_sub_folders(tmp_path: Path) -> None:
    root = _tree(tmp_path / "photos")
    first = _denoise(root)
    assert first.exit_code == 0, first.output
    lines = first.stderr.splitlines()
    assert lines.count("3 images in sub-folders skipped; use -r") == 1
    assert lines[-1].startswith("2 done, 0 skipped, 0 failed in ") and "MP/s" in lines[-1]
    again = _denoise(root, root / "x.png")  # the same image twice is one job
    assert again.stderr.splitlines() == ["3 images in sub-folders skipped; use -r",
                                         "0 done, 2 skipped (output exists), 0 failed in 0.0 s"]
    deep = _denoise(root, "-r")
    assert "sub-folders" not in deep.stderr
    assert deep.stderr.splitlines()[-1].startswith("3 done, 2 skipped (output exists), 0 failed")


@needs_weights
def test_verbose_names_the_skipped_inputs(tmp_path: Path) -> None:
    root = _tree(tmp_path / "photos")
    _denoise(root)
    result = _denoise(root, "--verbose")
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert skipped == [f"skipped {root / 'x.png'}: {root / 'x_denoised.png'} exists (use --overwrite to replace it)",
                       f"skipped {root / 'y.jpg'}: {root / 'y_denoised.jpg'} exists (use --overwrite to replace it)"]


@needs_weights
def test_quiet_prints_errors_only(tmp_path: Path) -> None:
    root = _tree(tmp_path / "photos")
    (root / "broken.png").write_text("not an image")
    result = _denoise(root, "--quiet")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {root / 'broken.png'}: not an image (unrecognised content)"]
    assert (root / "x_denoised.png").is_file()
    again = _denoise(root / "x.png", "-q", "--overwrite")
    assert again.exit_code == 0 and again.stdout == "" and again.stderr == ""
    records = _denoise(root / "x.png", "-q", "--overwrite", "--json")  # data asked for is still printed
    assert json.loads(records.stdout)["status"] == "done" and records.stderr == ""
