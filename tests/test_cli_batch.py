"""The denoise/deblur commands on folders: every good file done, every bad one named, exit codes, resume,
JSON, mirrored trees, Ctrl-C; CliRunner for most, real subprocesses for the terminal-facing parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.images import SHARED, TINY_WEIGHTS, write_broken, write_variants
from helpers.models import REPO
from helpers.runs import cli
from PIL import Image as PILImage
from PIL import ImageOps

pytestmark = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")


def denoise(*args: str | Path):  # noqa: ANN201
    return cli("denoise", "-w", TINY_WEIGHTS, "--device", "cpu", *args)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_variants(root / "photos")
    write_broken(root / "photos" / "broken")
    (root / "photos" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "photos" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    return root / "photos"


@pytest.fixture(scope="module")
def batch_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("out")
    return out, denoise(corpus, "-r", "-o", out, "--json")


def test_batch_does_every_good_file_and_names_every_bad_one(corpus: Path, batch_run) -> None:  # noqa: ANN001
    out, result = batch_run
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {Path(r["input"]).name: r for r in records}
    assert set(by_name) == {p.name for p in corpus.rglob("*") if p.is_file()} - {".DS_Store", "Thumbs.db"}
    broken = {"truncated.png", "truncated.jpg", "empty.png", "text.png"}
    assert {n for n, r in by_name.items() if r["status"] == "failed"} == broken
    assert all(by_name[n]["status"] == "done" for n in set(by_name) - broken)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4
    for name in broken:
        assert sum(name in line for line in errors) == 1
        assert by_name[name]["error"] and name in by_name[name]["error"]
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"{len(by_name) - 4} done, 0 skipped, 4 failed in ") and "MP/s" in summary
    rec = by_name["rgb8.png"]
    assert rec["output"] == str(out / "rgb8_denoised.png")
    assert rec["device"] == "cpu" and rec["precision"] == "fp32" and rec["tile_grid"] == [1, 1]
    assert rec["model"].endswith("denoise-nafnet.pth") and rec["seconds"] >= 0 and rec["error"] is None


def test_outputs_keep_what_the_inputs_had(corpus: Path, batch_run) -> None:  # noqa: ANN001
    out, _ = batch_run

    def o(name: str) -> Path:
        return out / name

    assert cv2.imread(str(o("rgb16_denoised.png")), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(o("rgb16_tif_denoised.tif")), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert PILImage.open(o("gray_denoised.png")).mode == "L"
    assert PILImage.open(o("la_denoised.png")).mode == "LA"
    alpha_in = np.asarray(PILImage.open(corpus / "rgba.png"))[:, :, 3]
    np.testing.assert_array_equal(np.asarray(PILImage.open(o("rgba_denoised.png")))[:, :, 3], alpha_in)
    pal = np.asarray(PILImage.open(corpus / "palette.png").convert("RGBA"))[:, :, 3]
    np.testing.assert_array_equal(np.asarray(PILImage.open(o("palette_denoised.png")))[:, :, 3], pal)
    assert PILImage.open(o("photo_denoised.jpg")).format == "JPEG"
    assert PILImage.open(o("cmyk_denoised.jpg")).mode == "RGB"
    assert PILImage.open(o("photo_webp_denoised.webp")).format == "WEBP"
    assert PILImage.open(o("photo_bmp_denoised.bmp")).format == "BMP"
    assert PILImage.open(o("anim_denoised.png")).format == "PNG"  # GIF in, PNG out
    assert PILImage.open(o("really_png_denoised.png")).format == "PNG"  # content decides
    rot = PILImage.open(o("rotated_denoised.jpg"))
    upright = ImageOps.exif_transpose(PILImage.open(corpus / "rotated.jpg"))
    assert rot.size == upright.size and rot.getexif().get(0x0112) == 1
    assert rot.info.get("icc_profile") == PILImage.open(corpus / "rotated.jpg").info["icc_profile"]
    assert not list(out.rglob("*.part"))  # no temporary file is left behind
    # every file under broken/ failed before anything was written: its mirrored folder is not even made
    assert not (out / "broken").exists()


def test_warnings_for_animation_and_cmyk(batch_run) -> None:  # noqa: ANN001
    _, result = batch_run
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any("anim.gif" in w and "first frame" in w for w in warnings)
    assert any("cmyk.jpg" in w and "CMYK" in w for w in warnings)


def test_resume_skips_existing_and_overwrite_redoes(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(src / "rgb8.png")
    PILImage.fromarray(np.full((16, 24), 90, np.uint8)).save(src / "gray.png")
    files = [src / "rgb8.png", src / "gray.png"]
    first = denoise(*files)
    assert first.exit_code == 0
    assert first.stdout.split() == [str(src / "rgb8_denoised.png"), str(src / "gray_denoised.png")]
    (src / "gray_denoised.png").unlink()  # as if the first run had been interrupted
    again = denoise(*files, "--json")
    assert again.exit_code == 0
    status = {Path(r["input"]).name: r["status"] for r in map(json.loads, again.stdout.splitlines())}
    assert status == {"rgb8.png": "skipped", "gray.png": "done"}
    assert again.stderr.strip().splitlines()[-1].startswith("1 done, 1 skipped (output exists), 0 failed")
    before = (src / "rgb8_denoised.png").stat().st_mtime_ns
    os.utime(src / "rgb8_denoised.png", ns=(before - 10**9, before - 10**9))
    forced = denoise(files[0], "--overwrite")
    assert forced.exit_code == 0 and (src / "rgb8_denoised.png").stat().st_mtime_ns > before - 10**9
    # a folder run does not pick up its own outputs
    folder = denoise(src, "--quiet")
    assert "_denoised_denoised" not in folder.stdout


def test_mirrored_tree_and_single_output_file(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    small = np.full((16, 24, 3), 90, np.uint8)
    for path in (src / "top.png", src / "a" / "b" / "rgb8.png"):
        PILImage.fromarray(small).save(path)
    PILImage.fromarray(small).save(src / "a" / "b" / "photo.jpg")
    out = tmp_path / "out"
    r = denoise(src / "top.png", src / "a", "-r", "-o", out, "--format", "png", "--suffix", "_x")
    assert r.exit_code == 0, r.stderr
    assert (out / "top_x.png").exists() and (out / "b" / "rgb8_x.png").exists()
    assert (out / "b" / "photo_x.png").exists()  # --format png for JPEG input
    one = tmp_path / "single.webp"
    r = denoise(src / "top.png", "-o", one, "--quality", "80")
    assert r.exit_code == 0 and PILImage.open(one).format == "WEBP"


@pytest.mark.parametrize("args, words", [
    (["--format", "gif"], "--format"),
    (["-o", "x.png", "EXTRA"], "output folder"),
    (["--max-pixels", "lots"], "--max-pixels"),
])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    src = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    args = [str(src) if a == "EXTRA" else (str(tmp_path / a) if a == "x.png" else a) for a in args]
    if "EXTRA" in args or str(src) in args:
        args.append(str(src.with_name("b.png")))
        PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src.with_name("b.png"))
    r = denoise(src, *args)
    assert r.exit_code == 2 and words in r.stderr


def test_missing_inputs_and_max_pixels_fail_per_file(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    PILImage.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(src)
    r = denoise(src, tmp_path / "nope.png", "--max-pixels", "1000")
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("a.png" in e and "--max-pixels" in e for e in errors)
    assert any("nope.png" in e and "no such file" in e for e in errors)


def test_fail_fast(tmp_path: Path) -> None:
    write_broken(tmp_path)
    PILImage.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "z_good.png")
    r = denoise(tmp_path, "--fail-fast", "--json")
    assert r.exit_code == 1 and len(r.stdout.splitlines()) == 1
    assert not (tmp_path / "z_good_denoised.png").exists()
    r = denoise(tmp_path)
    assert r.exit_code == 1 and (tmp_path / "z_good_denoised.png").exists()


def test_ctrl_c_exit_130_summary_and_no_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nafcli.inference.restorer import Restorer

    for i in range(3):
        PILImage.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f"p{i}.png")
    real = Restorer.restore_views
    calls = {"n": 0}

    def flaky(self, views, progress=None):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, views, progress)

    monkeypatch.setattr(Restorer, "restore_views", flaky)
    r = denoise(tmp_path)
    assert r.exit_code == 130
    assert r.stderr.strip().splitlines()[-1].startswith("interrupted: 1 done, 0 skipped, 0 failed")
    assert sorted(p.name for p in tmp_path.iterdir() if "denoised" in p.name) == ["p0_denoised.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_pipeline_parity_with_authors_png(tmp_path: Path) -> None:
    index = json.loads((SHARED / "reference" / "pipeline" / "index.json").read_text())
    case = index["denoise-nafnet"]
    out = tmp_path / "out.png"
    r = denoise(SHARED / case["inputs"][0], "-o", out, "--no-tlc")
    assert r.exit_code == 0, r.stderr
    ours = cv2.imread(str(out), cv2.IMREAD_UNCHANGED).astype(int)
    ref = cv2.imread(str(SHARED / "reference" / "pipeline" / case["outputs"][0]), cv2.IMREAD_UNCHANGED)
    diff = np.abs(ours - ref.astype(int))
    assert (diff == 0).mean() >= 0.999 and diff.max() <= 1


def _subprocess(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "nafcli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_subprocess_json_and_plain_stderr(tmp_path: Path) -> None:
    write_broken(tmp_path / "broken")
    PILImage.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(tmp_path / "ok.png")
    p = _subprocess("denoise", "-w", TINY_WEIGHTS, "-d", "cpu", "ok.png", "broken/text.png", "--json",
                    cwd=tmp_path)
    assert p.returncode == 1
    lines = [json.loads(line) for line in p.stdout.splitlines()]  # stdout is pure JSON lines
    assert [r["status"] for r in lines] == ["done", "failed"]
    assert "\x1b[" not in p.stderr  # not a terminal: no progress bar, no escape codes
    assert p.stderr.splitlines() == [
        "error: broken/text.png: not an image (unrecognised content)", p.stderr.splitlines()[-1]]
    p = _subprocess("denoise", "-w", TINY_WEIGHTS, "ok.png", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == ""  # stdout lists outputs written, and none was
    assert p.stderr.strip() == "0 done, 1 skipped (output exists), 0 failed in 0.0 s"  # no rate: nothing ran
    p = _subprocess("denoise", "-w", TINY_WEIGHTS, "--format", "gif", "ok.png", cwd=tmp_path)
    assert p.returncode == 2


def test_progress_renders_on_a_terminal(tmp_path: Path) -> None:
    """Forced on, the Rich progress must draw files and tiles without disturbing stdout."""
    from nafcli.cli.render import CliEvents
    from nafcli.jobs.plan import Job
    from nafcli.jobs.runner import JobResult

    ev = CliEvents(quiet=False, as_json=False, progress=True)
    job = Job((tmp_path / "a.png",), (tmp_path / "b.png",))
    with ev:
        ev.job_started(job, 0, 2)
        for i in range(1, 5):
            ev.tiles(i, 4)
        ev.job_finished(JobResult(job, "failed", error="a.png: bad"))
    assert ev._progress is not None and ev._progress.tasks[0].completed == 1


def test_deblur_names_and_tlc_weights(tmp_path: Path) -> None:
    weights = SHARED / "reference" / "pipeline" / "deblur-nafnet-local.pth"
    PILImage.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(tmp_path / "shot.jpg")
    r = cli("deblur", "-w", weights, "-d", "cpu", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    (rec,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert rec["status"] == "done" and rec["output"] == str(tmp_path / "shot_deblurred.jpg")
    assert PILImage.open(tmp_path / "shot_deblurred.jpg").size == (32, 24)


def test_help_does_not_import_torch() -> None:
    code = "import sys; from nafcli.cli.main import app; app(['denoise', '--help'])"
    p = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert "--max-pixels" in p.stdout and "--recursive" in p.stdout
    code = ("import sys\nfrom nafcli.cli.main import app\ntry:\n    app(['denoise', '--help'])\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
