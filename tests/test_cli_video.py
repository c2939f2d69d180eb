"""Videos through ``nafcli denoise`` and the Python API, end to end: the frames take the photo path (each
equals that frame restored as an image, within one level, through the real Restorer and the tiny
reference weights), one JSON record per video, folders mixing photos and videos, trimming, codec
options, bad videos in a batch, Ctrl-C, and ``sr``'s refusal. The I/O layer itself is tested in
tests/test_video.py; the clips here are made the same way (tests/helpers/videos.py), 64x48 and short."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.images import SHARED, TINY_WEIGHTS
from helpers.models import REPO
from helpers.runs import cli
from helpers.schemas import validate
from helpers.videos import audio_only, decoded, make_clip, packets
from PIL import Image as PILImage

from nafcli.errors import UsageError
from nafcli.imaging.video import probe

pytestmark = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")

SR_WEIGHTS = SHARED / "reference" / "pipeline" / "sr-nafssr-x4.pth"


def denoise(*args: str | Path):  # noqa: ANN201
    return cli("denoise", "-w", TINY_WEIGHTS, "--device", "cpu", *args)


def records(result) -> dict[str, dict]:  # noqa: ANN001
    return {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


def photo(path: Path) -> Path:
    yy, xx = np.mgrid[0:16, 0:24]
    PILImage.fromarray(np.stack([xx * 9, yy * 13, xx + yy], -1).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def restorer():  # noqa: ANN201
    from nafcli import Restorer

    return Restorer.from_file(TINY_WEIGHTS, task="denoise", device="cpu")


# --- inputs, outputs, records -------------------------------------------------------------------------


def test_folder_mixing_photos_and_videos(tmp_path: Path) -> None:
    """A folder of a photo, a Matroska clip and an MP4 named .jpg: each found by its content, each
    restored the way its kind is; one JSON record per video with its frames, duration, fps and codecs;
    a second run skips them all."""
    src = tmp_path / "in"
    src.mkdir()
    photo(src / "photo.png")
    make_clip(src / "clip.mkv", frames=12)
    make_clip(tmp_path / "phone.mp4", codec="libx264", pix_fmt="yuv420p", audio="aac", frames=10, smooth=True)
    (src / "movie.jpg").write_bytes((tmp_path / "phone.mp4").read_bytes())  # a video by content
    (src / "notes.txt").write_text("not an input\n")
    out = tmp_path / "out"
    r = denoise(src, "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    recs = records(r)
    assert set(recs) == {"photo.png", "clip.mkv", "movie.jpg"}
    assert all(rec["status"] == "done" for rec in recs.values())
    assert recs["photo.png"]["output"] == str(out / "photo_denoised.png") and "frames" not in recs["photo.png"]
    clip = recs["clip.mkv"]
    assert clip["output"] == str(out / "clip_denoised.mkv")
    assert (clip["kind"], clip["frames"], clip["fps"], clip["codec_in"], clip["codec_out"]) == (
        "video", 12, 25.0, "ffv1", "ffv1")
    assert clip["duration"] == pytest.approx(0.48) and clip["seconds"] > 0
    assert clip["input_size"] == clip["output_size"] == [64, 48]
    assert clip["input_megapixels"] == pytest.approx(12 * 64 * 48 / 1e6, abs=1e-4) and clip["device"] == "cpu"
    movie = recs["movie.jpg"]  # a video's container is kept; one under an image's name is written as .mkv
    assert movie["output"] == str(out / "movie_denoised.mkv") and movie["codec_in"] == "h264"
    assert len(decoded(out / "movie_denoised.mkv")) == 10
    assert len(decoded(out / "clip_denoised.mkv")) == 12 and not leftovers(tmp_path)
    again = denoise(src, "-o", out, "--json")
    assert again.exit_code == 0
    assert {n: rec["status"] for n, rec in records(again).items()} == dict.fromkeys(recs, "skipped")
    for rec in [*recs.values(), *records(again).values()]:  # video records follow docs/schemas too
        validate("restore", rec)


def test_output_frames_equal_the_frames_restored_as_images(tmp_path: Path, restorer) -> None:  # noqa: ANN001
    """Lossless FFV1 RGB (bgr0) in and out: every output frame is the same frame through Restorer.restore (the
    photo path) within one level, whole frames one at a time, three per pass, and in tiles; the variable
    frame timestamps and the sound are the input's."""
    from nafcli import Restorer

    src = make_clip(tmp_path / "clip.mkv", frames=6, vfr=True)  # variable frame rate: 20, 35, 50 ms
    frames = decoded(src)
    runs = {"one.mkv": (), "three.mkv": ("--batch-size", "3"), "tiled.mkv": ("--tile", "32", "--overlap", "4")}
    for name, extra in runs.items():
        r = denoise(src, "-o", tmp_path / name, "--json", *extra)
        assert r.exit_code == 0, r.stderr
    assert records(r)["clip.mkv"]["tiles"] > 1  # the tiled run really was tiled
    tiled = Restorer.from_file(TINY_WEIGHTS, task="denoise", device="cpu", tile=32, overlap=4)
    whole_images = [restorer.restore(x) for _, x in frames]
    tiled_images = [tiled.restore(x) for _, x in frames]
    for name in runs:
        out = decoded(tmp_path / name)
        assert [p for p, _ in out] == [p for p, _ in frames]
        images = tiled_images if name == "tiled.mkv" else whole_images
        for (_, x), (_, y), expected in zip(frames, out, images, strict=True):
            assert np.abs(expected.astype(int) - y).max() <= 1, name
            assert np.abs(x.astype(int) - y).max() > 1  # and the network did change it
        assert packets(tmp_path / name) == packets(src)


def test_h264_mp4_in_h264_mp4_out_and_codec_options(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "phone.mp4", codec="libx264", pix_fmt="yuv420p", audio="aac", frames=12,
                    smooth=True, rotation=90)
    r = denoise(src, "--json")
    assert r.exit_code == 0, r.stderr
    rec = records(r)["phone.mp4"]
    assert rec["output"] == str(tmp_path / "phone_denoised.mp4")
    assert (rec["codec_in"], rec["codec_out"], rec["frames"]) == ("h264", "libx264", 12)
    pi, po = probe(src), probe(tmp_path / "phone_denoised.mp4")
    assert (po.container, po.codec, po.pix_fmt, po.frames, po.rotation) == (pi.container, "h264", "yuv420p", 12, 90)
    assert [p for p, _ in decoded(src)] == [p for p, _ in decoded(tmp_path / "phone_denoised.mp4")]
    assert packets(src) == packets(tmp_path / "phone_denoised.mp4")
    # --codec and --crf; --format is for photos: a video keeps its container, with a warning
    r = denoise(src, "--codec", "libx265", "--crf", "30", "--format", "png", "--suffix", "_x265")
    assert r.exit_code == 0, r.stderr
    assert probe(tmp_path / "phone_x265.mp4").codec == "hevc"
    assert "--format png applies to photos" in r.stderr
    # an encoder that does not exist is a usage error, said once before anything runs
    r = denoise(src, "--codec", "nosuchcodec", "--suffix", "_bad")
    assert r.exit_code == 2 and "--codec nosuchcodec" in r.stderr and not (tmp_path / "phone_bad.mp4").exists()
    # a video cannot be written under an image's name, nor a photo under a video's
    r = denoise(src, "-o", tmp_path / "frame.png")
    assert r.exit_code == 1 and "cannot hold a video" in r.stderr and not (tmp_path / "frame.png").exists()
    r = denoise(photo(tmp_path / "p.png"), "-o", tmp_path / "p.mp4")
    assert r.exit_code == 1 and "cannot hold an image" in r.stderr


def test_ten_bit_video_stays_ten_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """10-bit frames take the 16-bit photo path (uint16 over the full range) and are written 10-bit."""
    from nafcli.inference.restorer import Restorer

    seen: list[tuple[np.dtype, int]] = []
    real = Restorer.restore_frames

    def spy(self, frames, progress=None):  # noqa: ANN001, ANN202
        seen.extend((f.pixels.dtype, int(f.pixels.max())) for f in frames)
        return real(self, frames, progress)

    monkeypatch.setattr(Restorer, "restore_frames", spy)
    src = make_clip(tmp_path / "deep.mkv", pix_fmt="yuv420p10le", smooth=True, frames=4, audio=None)
    r = denoise(src, "--json")
    assert r.exit_code == 0, r.stderr
    rec = records(r)["deep.mkv"]
    assert (rec["pix_fmt_in"], rec["pix_fmt_out"]) == ("yuv420p10le", "yuv420p10le")
    assert len(seen) == 4 and all(dtype == np.uint16 and peak > 50000 for dtype, peak in seen)
    out = probe(tmp_path / "deep_denoised.mkv")
    assert (out.pix_fmt, out.bit_depth) == ("yuv420p10le", 10)


def test_start_and_duration_cut_video_and_sound(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mkv", frames=50)  # 2 s, 40 ms a frame
    r = denoise(src, "-o", tmp_path / "cut.mkv", "--start", "0.5", "--duration", "0:01", "--json")
    assert r.exit_code == 0, r.stderr
    assert records(r)["in.mkv"]["frames"] == 25
    kept = [p - 500 for p, _ in decoded(src) if 500 <= p < 1500]
    assert [p for p, _ in decoded(tmp_path / "cut.mkv")] == kept and kept[0] == 20
    assert packets(tmp_path / "cut.mkv") == [(p - 500, data) for p, data in packets(src) if 500 <= p < 1500]
    r = denoise(src, "--start", "1:75")
    assert r.exit_code == 2 and "--start" in r.stderr


def test_bad_videos_fail_or_warn_and_the_batch_goes_on(tmp_path: Path) -> None:
    """Zero bytes, an MP4 cut before its index, audio only: one-line errors naming the file; a Matroska
    file cut short: its decodable frames restored, with a warning naming the frame; photos and good
    videos in the same folder done; no temporary file left."""
    (tmp_path / "empty.mp4").write_bytes(b"")
    full_mp4 = make_clip(tmp_path / "full.mp4", codec="libx264", pix_fmt="yuv420p", audio=None).read_bytes()
    (tmp_path / "full.mp4").unlink()
    (tmp_path / "cut.mp4").write_bytes(full_mp4[: len(full_mp4) // 2])
    data = make_clip(tmp_path / "long.mkv", frames=40).read_bytes()
    (tmp_path / "long.mkv").unlink()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    make_clip(tmp_path / "both.mkv", frames=5)
    audio_only(tmp_path / "both.mkv", tmp_path / "sound.mka")
    (tmp_path / "both.mkv").rename(tmp_path / "good.mkv")
    photo(tmp_path / "photo.png")
    r = denoise(tmp_path, "--json")
    assert r.exit_code == 1
    recs = records(r)
    status = {n: rec["status"] for n, rec in recs.items()}
    assert status == {"empty.mp4": "failed", "cut.mp4": "failed", "sound.mka": "failed", "cut.mkv": "done",
                      "good.mkv": "done", "photo.png": "done"}
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    for name, words in {"empty.mp4": "empty file", "cut.mp4": "corrupt or truncated",
                        "sound.mka": "no video stream"}.items():
        assert sum(name in e and words in e for e in errors) == 1, (name, errors)
        assert not (tmp_path / name.replace(".", "_denoised.")).exists()
    cut = recs["cut.mkv"]
    assert cut["truncated"] and 0 < cut["frames"] < 40
    assert any(f"stopped after frame {cut['frames']} " in w for w in cut["warnings"])
    assert any("warning:" in line and "cut.mkv" in line for line in r.stderr.splitlines())
    assert len(decoded(tmp_path / "cut_denoised.mkv")) == cut["frames"]
    assert r.stderr.strip().splitlines()[-1].startswith("3 done, 0 skipped, 3 failed")
    assert not leftovers(tmp_path)


def test_sr_refuses_a_video(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mkv", frames=3)
    r = cli("sr", "-w", SR_WEIGHTS, "-d", "cpu", clip)
    assert r.exit_code == 1
    (line,) = [e for e in r.stderr.splitlines() if e.startswith("error:")]
    assert "clip.mkv" in line and "is a video" in line and "pairs" in line
    assert not [p for p in tmp_path.iterdir() if p.name != "clip.mkv"]


# --- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_mid_video_leaves_no_file_and_a_rerun_resumes(tmp_path: Path) -> None:
    """A real process and a real SIGINT while the second video is being written (the network slowed
    down so that it is still running): exit 130, the first video kept, no trace of the second; a re-run
    skips the first and does the second."""
    make_clip(tmp_path / "a.mkv", frames=4, audio=None)
    make_clip(tmp_path / "b.mkv", frames=400, audio=None)
    slow = ("import sys, time\n"
            "from nafcli.inference.restorer import Restorer\n"
            "real = Restorer.restore_frames\n"
            "def slow(self, frames, progress=None):\n"
            "    time.sleep(0.05)\n"
            "    return real(self, frames, progress)\n"
            "Restorer.restore_frames = slow\n"
            "from nafcli.cli.main import run\n"
            "sys.argv = ['nafcli'] + sys.argv[1:]\n"
            "run()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", slow, "denoise", "-w", str(TINY_WEIGHTS), "-d", "cpu",
                             str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".b_denoised.mkv.") for p in tmp_path.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the second video never started"
            time.sleep(0.02)
        time.sleep(0.3)  # some frames into it
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted: 1 done, 0 skipped, 0 failed"), err
    assert out.split() == [str(tmp_path / "a_denoised.mkv")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv", "a_denoised.mkv", "b.mkv"]
    r = denoise(tmp_path, "--json", "--duration", "0.2")
    assert r.exit_code == 0, r.stderr
    assert {n: rec["status"] for n, rec in records(r).items()} == {"a.mkv": "skipped", "b.mkv": "done"}


def test_ctrl_c_with_two_workers_leaves_no_partial_video(tmp_path: Path, restorer) -> None:  # noqa: ANN001
    """With one worker per device the videos are restored on worker threads, which Ctrl-C does not reach:
    they stop after their current batch, remove their partial files, and the run waits for that."""
    import _thread
    import copy
    import threading

    from nafcli import Restorer
    from nafcli.jobs.plan import Job
    from nafcli.jobs.runner import run_jobs
    from nafcli.jobs.video_work import VideoWork

    clips = [make_clip(tmp_path / f"v{i}.mkv", frames=300, audio=None) for i in range(2)]
    jobs = [Job((c,), (c.with_name(f"{c.stem}_out.mkv"),), kind="video") for c in clips]
    workers = []
    for _ in range(2):
        r = Restorer(copy.deepcopy(restorer.model), device="cpu")
        real = r.restore_frames

        def slow(frames, progress=None, real=real):  # noqa: ANN001, ANN202
            time.sleep(0.02)
            return real(frames, progress)

        r.restore_frames = slow  # type: ignore[method-assign]
        workers.append(VideoWork(r))
    interrupted = []

    def interrupt_once_both_are_writing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(leftovers(tmp_path)) == 2:
                interrupted.append(True)
                _thread.interrupt_main()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=interrupt_once_both_are_writing, daemon=True)
    watcher.start()
    report = run_jobs(jobs, workers)
    watcher.join()
    assert interrupted and report.interrupted and report.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v0.mkv", "v1.mkv"]
    threads = [t for t in threading.enumerate() if t.name.startswith(("nafcli-video", "nafcli-compute"))]
    for t in threads:  # each has done its last step: only its return may be left
        t.join(10)
    assert not [t.name for t in threads if t.is_alive()]


# --- the Python API and the pieces under the CLI --------------------------------------------------------


def test_restore_video_api(tmp_path: Path, restorer) -> None:  # noqa: ANN001
    from nafcli import Restorer

    src = make_clip(tmp_path / "clip.mkv", frames=20)
    seen: list[tuple[int, int | None]] = []
    runs = []
    result = restorer.restore_video(src, tmp_path / "out.mkv", start="0:00.2", duration=0.4,
                                    progress=lambda done, total: seen.append((done, total)), on_batch=runs.append)
    assert (result.frames, result.codec_in, result.codec_out) == (10, "ffv1", "ffv1")
    assert seen[-1] == (10, 10) and len(runs) == 10 and runs[0].device == "cpu"
    assert result.duration == pytest.approx(0.4) and json.loads(json.dumps(result.as_dict()))["frames"] == 10
    out = decoded(tmp_path / "out.mkv")
    first = dict(decoded(src))[200]
    assert np.abs(restorer.restore(first).astype(int) - out[0][1]).max() <= 1
    batched = restorer.restore_video(src, tmp_path / "batched.mkv", batch_size=4, codec="libx264", crf=20)
    assert batched.frames == 20 and probe(tmp_path / "batched.mkv").codec == "h264"
    stereo = Restorer.from_file(SR_WEIGHTS, device="cpu")
    with pytest.raises(UsageError, match="stereo"):
        stereo.restore_video(src, tmp_path / "sr.mkv")
    assert not (tmp_path / "sr.mkv").exists()


def test_frames_per_pass_and_restore_frames(restorer) -> None:  # noqa: ANN001
    from nafcli import Restorer
    from nafcli.imaging.image import Image

    assert restorer.frames_per_pass(48, 64) == 1  # CPU, auto: one frame at a time
    three = Restorer(restorer.model, device="cpu", batch_size=3)
    assert three.frames_per_pass(48, 64) == 3  # whole frames: --batch-size of them per pass
    tiled = Restorer(restorer.model, device="cpu", batch_size=3, tile=32, overlap=4)
    assert tiled.frames_per_pass(48, 64) == 1  # tiled frames: one at a time, tiles batched instead
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65536, (48, 64, 3), dtype=np.uint16) for _ in range(3)]
    done = three.restore_frames([Image(pixels=f) for f in frames])
    for f, im in zip(frames, done.images, strict=True):
        assert im.pixels.dtype == np.uint16
        assert np.abs(restorer.restore(f).astype(int) - im.pixels).max() <= 1
    with pytest.raises(UsageError, match="same size"):
        three.restore_frames([Image(pixels=frames[0]), Image(pixels=frames[1][:32])])


def test_names_and_kinds(tmp_path: Path) -> None:
    """Content decides the kind; an extension only keeps a broken file on the path that will explain it."""
    from nafcli.jobs.names import input_kind, video_output_name

    mkv = make_clip(tmp_path / "a.mkv", frames=2, audio=None)
    (tmp_path / "video.png").write_bytes(mkv.read_bytes())
    photo(tmp_path / "photo.png").rename(tmp_path / "photo.mp4")
    (tmp_path / "empty.mov").write_bytes(b"")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello\n")
    kinds = {p.name: input_kind(p) for p in tmp_path.iterdir()}
    assert kinds == {"a.mkv": "video", "video.png": "video", "photo.mp4": "image", "empty.mov": "video",
                     "empty.png": "image", "notes.txt": None}
    assert video_output_name(Path("x/clip.MOV"), "_deblurred") == "clip_deblurred.MOV"
    assert video_output_name(Path("x/clip.png"), "_denoised") == "clip_denoised.mkv"


def test_help_says_the_video_defaults() -> None:
    text = " ".join(cli("denoise", "--help").stdout.replace("│", " ").split())  # Rich boxes the options
    for words in ("--codec", "--crf", "--start", "--duration", "H.264 (libx264)", "H.264 17", "photos and videos"):
        assert words in text, words


def test_restore_paths_api_with_video_options(tmp_path: Path) -> None:
    import nafcli

    make_clip(tmp_path / "clip.mkv", frames=10, audio=None)
    report = nafcli.restore_paths([tmp_path], task="denoise", model=nafcli.ModelChoice(weights=TINY_WEIGHTS),
                                  run=nafcli.RunSettings(device="cpu"),
                                  video=nafcli.VideoOptions(start=0.2, duration=0.2, codec="libx264", crf=23))
    (result,) = report.results
    assert result.status == "done" and result.details["video"]["frames"] == 5
    assert probe(tmp_path / "clip_denoised.mkv").codec == "h264"
    with pytest.raises(UsageError, match="--crf"):
        nafcli.restore_paths([tmp_path], task="denoise", model=nafcli.ModelChoice(weights=TINY_WEIGHTS),
                             output=nafcli.OutputOptions(overwrite=True), video=nafcli.VideoOptions(crf=99))


def test_frames_progress_renders_under_the_files_bar(tmp_path: Path) -> None:
    from nafcli.cli.render import CliEvents
    from nafcli.jobs.plan import Job

    ev = CliEvents(progress=True)
    job = Job((tmp_path / "a.mkv",), (tmp_path / "a_denoised.mkv",), kind="video")
    with ev:
        ev.job_started(job, 0, 2)
        ev.frames(4, 10)
        ev.frames(8, None)  # a total the file does not say
        task = next(t for t in ev._progress.tasks if t.id == ev._frames)
        assert task.completed == 8 and "fps" in task.description
        ev.job_started(job, 1, 2)
        assert ev._frames is None
