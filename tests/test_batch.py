"""nafcli.jobs without the CLI: discovery, output planning, the job runner, Ctrl-C."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.images import SHARED, TINY_WEIGHTS, photo
from PIL import Image as PILImage

from nafcli.errors import ImageReadError, UsageError
from nafcli.jobs.discover import Source, discover
from nafcli.jobs.plan import Job, OutputSpec
from nafcli.jobs.plan import plan as plan_groups
from nafcli.jobs.runner import Events, JobOutcome, run_jobs
from nafcli.jobs.work import restore_job


def _png(path: Path, arr: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(photo() if arr is None else arr).save(path, "PNG")
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    _png(root / "a.png")
    PILImage.fromarray(photo()).save(root / "b.jpg")
    _png(root / "sub" / "c.png")
    _png(root / "sub" / "deeper" / "d.png")
    _png(root / "scan0001")  # no extension: recognised by content
    _png(root / ".hidden.png")
    _png(root / "._a.png")  # macOS resource fork
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "notes.txt").write_text("not an image")
    _png(root / "a_denoised.png")  # an earlier output
    return root


def names(sources: list) -> list[str]:
    return sorted(s.path.name for s in sources)


def plan(sources: list[Source], spec: OutputSpec) -> list[Job]:
    """Plan one job per source (what denoise and deblur do)."""
    return plan_groups([[s] for s in sources], spec)


def test_discover_folder_skips_hidden_system_and_earlier_outputs(tree: Path) -> None:
    assert names(discover([tree], exclude_suffix="_denoised")) == ["a.png", "b.jpg", "scan0001"]
    assert names(discover([tree], recursive=True, exclude_suffix="_denoised")) == [
        "a.png", "b.jpg", "c.png", "d.png", "scan0001"]


def test_discover_mix_of_files_dirs_and_patterns(tree: Path) -> None:
    found = discover([tree / "b.jpg", tree / "sub", str(tree / "*.png"), tree / "missing.png",
                      str(tree / "nomatch*.tif")], exclude_suffix="_denoised")
    ok = [s for s in found if s.problem is None]
    bad = [s for s in found if s.problem is not None]
    # a.png and a_denoised.png match the pattern: a pattern is what the user asked for
    assert names(ok) == ["a.png", "a_denoised.png", "b.jpg", "c.png"]
    assert sorted(s.problem for s in bad) == sorted([
        f"{tree / 'missing.png'}: no such file or directory",
        f"{tree / 'nomatch*.tif'}: no images match this pattern"])
    # duplicates collapse: the same file named twice is one job
    assert len(discover([tree / "a.png", tree / "a.png"])) == 1


def test_default_outputs_beside_input_in_input_format(tree: Path) -> None:
    PILImage.fromarray(photo()).save(tree / "anim.gif")
    cv2.imwrite(str(tree / "alpha.bmp"), np.dstack([photo(), photo()[:, :, 0]]))  # 32-bit BMP
    jobs = plan(discover([tree], exclude_suffix="_denoised"), OutputSpec(task="denoise"))
    outs = {j.inputs[0].name: j.outputs[0] for j in jobs}
    assert outs["b.jpg"] == tree / "b_denoised.jpg"
    assert outs["scan0001"] == tree / "scan0001_denoised.png"
    assert outs["anim.gif"] == tree / "anim_denoised.png"  # GIF cannot be written: PNG
    assert outs["alpha.bmp"] == tree / "alpha_denoised.png"  # BMP with alpha: PNG
    assert jobs[0].skip is not None and "exists" in jobs[0].skip  # a.png -> a_denoised.png exists
    jobs = plan(discover([tree]), OutputSpec(task="deblur", suffix="-sharp", fmt="webp"))
    assert {j.outputs[0].name for j in jobs} >= {"a-sharp.webp", "b-sharp.webp"}


def test_output_dir_mirrors_tree(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = plan(discover([tree], recursive=True, exclude_suffix="_denoised"), OutputSpec("denoise", out))
    rel = sorted(str(j.outputs[0].relative_to(out)) for j in jobs)
    assert rel == ["a_denoised.png", "b_denoised.jpg", "scan0001_denoised.png",
                   "sub/c_denoised.png", "sub/deeper/d_denoised.png"]
    assert all(j.skip is None and j.problem is None for j in jobs)


def test_output_file_for_one_input_and_usage_error_for_many(tree: Path, tmp_path: Path) -> None:
    jobs = plan(discover([tree / "a.png"]), OutputSpec("denoise", tmp_path / "x.tif"))
    assert jobs[0].outputs == (tmp_path / "x.tif",)
    with pytest.raises(UsageError, match="output folder"):
        plan(discover([tree / "a.png", tree / "b.jpg"]), OutputSpec("denoise", tmp_path / "x.png"))


def test_output_names_that_cannot_be_meant_are_usage_errors(tree: Path, tmp_path: Path) -> None:
    one = discover([tree / "a.png"])
    with pytest.raises(UsageError, match=r"-o .*out\.xyz: nafcli cannot write '\.xyz' files"):
        plan(one, OutputSpec("denoise", tmp_path / "out.xyz"))
    with pytest.raises(UsageError, match=r"cannot write '\.gif'"):
        plan(one, OutputSpec("denoise", tmp_path / "out.gif"))
    (tmp_path / "out.v2").mkdir()  # an existing folder with a dot in its name stays a folder
    assert plan(one, OutputSpec("denoise", tmp_path / "out.v2"))[0].outputs == (tmp_path / "out.v2" / "a_denoised.png",)
    many = discover([tree / "a.png", tree / "b.jpg"])
    assert plan(many, OutputSpec("denoise", tmp_path / "new.d"))[0].outputs[0].parent == tmp_path / "new.d"
    with pytest.raises(UsageError, match=r"--format jpg contradicts -o .*x\.png \(a png file name\)"):
        plan(one, OutputSpec("denoise", tmp_path / "x.png", fmt="jpg"))
    assert plan(one, OutputSpec("denoise", tmp_path / "x.jpeg", fmt="jpg"))[0].outputs == (tmp_path / "x.jpeg",)
    assert plan(one, OutputSpec("denoise", tmp_path / "x.tif", fmt="tiff"))[0].outputs == (tmp_path / "x.tif",)


def test_never_overwrites_an_input_and_reports_collisions(tree: Path) -> None:
    jobs = plan(discover([tree / "a.png"]), OutputSpec("denoise", suffix=""))
    assert jobs[0].problem and "overwrite an input" in jobs[0].problem
    jobs = plan(discover([tree / "a.png"]), OutputSpec("denoise", tree / "a.png", overwrite=True))
    assert jobs[0].problem and "overwrite an input" in jobs[0].problem
    _png(tree / "b.png")
    jobs = plan(discover([tree / "b.jpg", tree / "b.png"]), OutputSpec("denoise", fmt="png"))
    assert jobs[0].problem is None and "also the output of" in (jobs[1].problem or "")


def test_overwrite_turns_skip_into_work(tree: Path) -> None:
    assert plan(discover([tree / "a.png"]), OutputSpec("denoise"))[0].skip
    assert plan(discover([tree / "a.png"]), OutputSpec("denoise", overwrite=True))[0].skip is None


class Recorder(Events):
    def __init__(self) -> None:
        self.log: list[str] = []

    def job_started(self, job: Job, index: int, total: int) -> None:
        self.log.append(f"start {index}/{total}")

    def job_finished(self, result) -> None:  # noqa: ANN001
        self.log.append(f"{result.status} {result.job.inputs[0].name}")


def _jobs(n: int) -> list[Job]:
    return [Job((Path(f"f{i}.png"),), (Path(f"o{i}.png"),)) for i in range(n)]


def test_runner_continues_past_failures_and_counts() -> None:
    def work(job: Job, ev: Events) -> JobOutcome:
        if job.inputs[0].name == "f1.png":
            raise ImageReadError("f1.png: not an image")
        if job.inputs[0].name == "f2.png":
            raise ValueError("boom\nsecond line")
        return JobOutcome(megapixels=2.0)

    jobs = _jobs(4) + [Job((Path("s.png"),), (Path("t.png"),), skip="exists")]
    rec = Recorder()
    ticks = iter(range(100))
    report = run_jobs(jobs, work, events=rec, clock=lambda: float(next(ticks)))
    assert [r.status for r in report.results] == ["done", "failed", "failed", "done", "skipped"]
    assert report.results[1].error == "f1.png: not an image"
    assert report.results[2].error == "f2.png: unexpected ValueError: boom"
    assert report.exit_code == 1 and report.megapixels == 4.0 and report.seconds > 0
    # results are reported in job order; each job starts before it finishes (the next one may start first:
    # the runner overlaps reading, computing and writing)
    finished = [e for e in rec.log if not e.startswith("start")]
    assert finished == ["done f0.png", "failed f1.png", "failed f2.png", "done f3.png", "skipped s.png"]
    for i, event in enumerate(finished):
        assert rec.log.index(f"start {i}/5") < rec.log.index(event)


def test_fail_fast_stops_at_first_failure() -> None:
    def work(job: Job, ev: Events) -> JobOutcome:
        raise ImageReadError(f"{job.inputs[0]}: bad")

    report = run_jobs(_jobs(3), work, fail_fast=True)
    assert len(report.results) == 1 and report.exit_code == 1


def test_keyboard_interrupt_returns_results_so_far() -> None:
    def work(job: Job, ev: Events) -> JobOutcome:
        if job.inputs[0].name == "f2.png":
            raise KeyboardInterrupt
        return JobOutcome()

    report = run_jobs(_jobs(5), work)
    assert report.interrupted and report.exit_code == 130
    assert [r.status for r in report.results] == ["done", "done"]


@pytest.fixture(scope="module")
def restorer():  # noqa: ANN201
    if not TINY_WEIGHTS.exists():
        pytest.skip("../shared/reference/pipeline is not here")
    from nafcli import Restorer

    return Restorer.from_file(TINY_WEIGHTS, device="cpu")


class InterruptAt(Events):
    """Raise KeyboardInterrupt from the tile callback of the n-th job (as Ctrl-C mid-image would)."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, -1

    def job_started(self, job: Job, index: int, total: int) -> None:
        self.i = index

    def tiles(self, done: int, total: int) -> None:
        if self.i == self.n:
            raise KeyboardInterrupt


def test_ctrl_c_mid_image_leaves_no_partial_file(restorer, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "in"
    for i in range(3):
        _png(src / f"p{i}.png")
    out = tmp_path / "out"
    jobs = plan(discover([src]), OutputSpec("denoise", out))
    report = run_jobs(jobs, restore_job(restorer), events=InterruptAt(1))
    assert report.interrupted and [r.status for r in report.results] == ["done"]
    assert sorted(p.name for p in out.iterdir()) == ["p0_denoised.png"]


def test_ctrl_c_while_writing_leaves_no_partial_file(
    restorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    import nafcli.imaging.files as files

    src = _png(tmp_path / "in" / "p.png")
    out = tmp_path / "out"

    def interrupted(a: str, b: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    report = run_jobs(plan(discover([src]), OutputSpec("denoise", out)), restore_job(restorer))
    assert report.interrupted
    assert list(out.iterdir()) == []  # the temporary file was removed too


def test_restore_job_on_real_photos(restorer, tmp_path: Path) -> None:  # noqa: ANN001
    shared_samples = SHARED / "samples"
    src = tmp_path / "in"
    _png(src / "astronaut.png")
    PILImage.fromarray(photo("coffee")).save(src / "coffee.jpg", quality=90)
    if (shared_samples / "lr_img_l.png").exists():
        shutil.copy(shared_samples / "lr_img_l.png", src / "stereo_left.png")
    report = run_jobs(plan(discover([src]), OutputSpec("denoise")), restore_job(restorer))
    assert report.exit_code == 0 and report.count("done") == len(report.results) >= 2
    for r in report.results:
        assert r.megapixels > 0 and r.details["device"] == "cpu"
        a = PILImage.open(r.job.inputs[0])
        b = PILImage.open(r.job.outputs[0])
        assert a.size == b.size and a.format == b.format


def test_plan_pairs_for_stereo(tmp_path: Path) -> None:
    """A stereo pair is one job of two inputs and two outputs (one planner for every command)."""
    left, right = _png(tmp_path / "l.png"), _png(tmp_path / "r.png")
    pair = [Source(left, tmp_path), Source(right, tmp_path)]

    def plan_pairs(spec: OutputSpec) -> list[Job]:
        return plan_groups([pair], spec, file_output=False)

    (job,) = plan_pairs(OutputSpec("stereo-sr", tmp_path / "out"))
    assert job.inputs == (left, right)
    assert job.outputs == (tmp_path / "out" / "l_sr.png", tmp_path / "out" / "r_sr.png") and not job.skip
    _png(tmp_path / "out" / "l_sr.png")
    assert plan_pairs(OutputSpec("stereo-sr", tmp_path / "out"))[0].skip is None  # one missing: redo
    _png(tmp_path / "out" / "r_sr.png")
    assert plan_pairs(OutputSpec("stereo-sr", tmp_path / "out"))[0].skip
    (bad,) = plan_pairs(OutputSpec("stereo-sr", suffix=""))
    assert bad.problem and "overwrite an input" in bad.problem


def test_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "a.png")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    assert names(discover([tmp_path / "d"], recursive=True)) == ["a.png"]
