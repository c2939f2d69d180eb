"""``--ray``: nafcli's batches on a real local Ray instance (2 CPUs, 127.0.0.1), held against the local run.

One instance is shared by the module (starting Ray costs seconds); the commands run in this process
through the CLI and find it connected. What is checked is what a user would see: the same files byte for
byte, the same --json records (in job order), summary, error lines and exit code as the local run; a
worker killed mid-batch costing nothing; Ctrl-C (a real process, its own Ray instance) ending with 130,
nothing half-written, and a re-run finishing only what is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.images import TINY_WEIGHTS, write_variants
from helpers.runs import cli, errors, records, summary, visible, whole, written
from PIL import Image

pytestmark = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")

SIZE = (96, 128)  # rows, columns: a few tens of milliseconds per image with the tiny weights


@pytest.fixture(scope="module")
def ray_instance():  # noqa: ANN201
    pytest.importorskip("ray")
    from nafcli.jobs.ray_session import ray_session

    with ray_session(num_cpus=2):
        yield


def _photos(folder: Path, count: int, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    paths = [folder / f"{prefix}{i:02d}.png" for i in range(count)]
    for p in paths:
        Image.fromarray((rng.random((*SIZE, 3)) * 255).astype(np.uint8)).save(p)
    return paths


def denoise(inputs: Path, out: Path, *extra: str):  # noqa: ANN201
    return cli("denoise", inputs, "-o", out, "-w", TINY_WEIGHTS, "--json", *extra)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The formats photos come in (16-bit, alpha, EXIF orientation, ICC, CMYK, palette, ...), an unreadable
    file, and a sub-folder (mirrored under -o)."""
    folder = tmp_path_factory.mktemp("ray") / "in"
    write_variants(folder)
    _photos(folder / "sub", 3)
    (folder / "bad.png").write_text("not an image")
    return folder


def _prepared(out: Path) -> Path:
    """An output folder where one output exists already (skipped)."""
    out.mkdir(parents=True)
    (out / "rgb8_denoised.png").write_bytes(b"done before")
    return out


@pytest.mark.slow
def test_a_ray_run_writes_what_the_local_run_writes(ray_instance, corpus: Path, tmp_path: Path) -> None:
    local_out, ray_out = _prepared(tmp_path / "local"), _prepared(tmp_path / "ray")
    local = denoise(corpus, local_out, "-r", "-d", "cpu")
    on_ray = denoise(corpus, ray_out, "-r", "--ray")
    assert local.exit_code == on_ray.exit_code == 1  # the unreadable file, reported once, the batch went on
    assert written(ray_out) == written(local_out)  # byte for byte, and no temporary file left
    assert records(on_ray.stdout, ray_out) == records(local.stdout, local_out)  # in job order
    assert summary(on_ray.stderr) == summary(local.stderr) == "16 done, 1 skipped (output exists), 1 failed"
    assert errors(on_ray.stderr) == errors(local.stderr) and len(errors(on_ray.stderr)) == 1
    assert [ln for ln in on_ray.stderr.splitlines() if ln.startswith("warning:")] == [
        ln for ln in local.stderr.splitlines() if ln.startswith("warning:")]

    # shards of a batch, one on Ray and one not, make the same batch
    shards_out = _prepared(tmp_path / "shards")
    shards = [denoise(corpus, shards_out, "-r", "--ray", "--ray-cpus-per-worker", "1", "--shard", "0/2"),
              denoise(corpus, shards_out, "-r", "-d", "cpu", "--shard", "1/2")]
    assert written(shards_out) == written(local_out)
    got = sorted((r for s in shards for r in records(s.stdout, shards_out)), key=lambda r: r["input"])
    assert got == sorted(records(local.stdout, local_out), key=lambda r: r["input"])


@pytest.mark.slow
def test_stereo_pairs_on_ray(ray_instance, tmp_path: Path) -> None:
    from helpers.models import PIPELINE

    rng = np.random.default_rng(5)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for name in ("a", "b", "c"):
        for view in ("L", "R"):
            Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(pairs / f"{name}_{view}.png")
    (pairs / "lonely_L.png").write_bytes((pairs / "a_L.png").read_bytes())  # no right view: refused
    sr = ("sr", pairs, "-w", PIPELINE / "sr-nafssr-x4.pth", "--json")
    local = cli(*sr, "-o", tmp_path / "local", "-d", "cpu")
    on_ray = cli(*sr, "-o", tmp_path / "ray", "--ray")
    assert local.exit_code == on_ray.exit_code == 1
    assert written(tmp_path / "ray") == written(tmp_path / "local") and len(written(tmp_path / "ray")) == 6
    assert records(on_ray.stdout, tmp_path / "ray") == records(local.stdout, tmp_path / "local")
    assert summary(on_ray.stderr) == summary(local.stderr) == "3 done, 0 skipped, 1 failed"


@pytest.mark.slow
def test_videos_on_ray_and_in_shards_are_restored_as_locally(ray_instance, tmp_path: Path) -> None:
    """A folder mixing a photo and two videos (the job kinds of denoise): on Ray, and split in two shards,
    the same frames, timestamps and records as the local run."""
    from helpers.videos import decoded, make_clip

    src = tmp_path / "in"
    _photos(src, 1)
    make_clip(src / "clip.mkv", frames=6)
    make_clip(src / "vfr.mkv", frames=5, vfr=True, audio=None)
    local = denoise(src, tmp_path / "local", "-d", "cpu")
    on_ray = denoise(src, tmp_path / "ray", "--ray")
    shards = [denoise(src, tmp_path / "shards", "-d", "cpu", "--shard", f"{k}/2") for k in range(2)]
    assert local.exit_code == on_ray.exit_code == 0 and [s.exit_code for s in shards] == [0, 0]
    for out in ("ray", "shards"):
        mine, base = written(tmp_path / out), written(tmp_path / "local")
        assert sorted(mine) == sorted(base) and len(base) == 3  # the same files, no temporary one left
        photos = [k for k in base if not k.endswith(".mkv")]
        assert [mine[k] for k in photos] == [base[k] for k in photos]  # photos byte for byte; videos by frame
        for clip in ("clip_denoised.mkv", "vfr_denoised.mkv"):
            mine, theirs = decoded(tmp_path / out / clip), decoded(tmp_path / "local" / clip)
            assert [pts for pts, _ in mine] == [pts for pts, _ in theirs] and len(mine) in (5, 6)
            assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(mine, theirs, strict=True))
    assert records(on_ray.stdout, tmp_path / "ray") == records(local.stdout, tmp_path / "local")
    got = sorted((r for s in shards for r in records(s.stdout, tmp_path / "shards")), key=lambda r: r["input"])
    assert got == sorted(records(local.stdout, tmp_path / "local"), key=lambda r: r["input"])
    assert {r["kind"] for r in got if "kind" in r} == {"video"} and len(got) == 3


@pytest.mark.slow
def test_fail_fast_and_relative_paths_on_ray(ray_instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths relative to the driver's folder (the workers were started in another) mean the same files
    and messages; --fail-fast stops where the local run stops."""
    monkeypatch.chdir(tmp_path)
    _photos(Path("in"), 2, prefix="b")
    (Path("in") / "c_bad.png").write_text("not an image")  # third in job order
    _photos(Path("in"), 2, prefix="d")
    local = denoise(Path("in"), Path("local"), "-d", "cpu", "--fail-fast")
    on_ray = denoise(Path("in"), Path("ray"), "--ray", "--fail-fast")
    assert local.exit_code == on_ray.exit_code == 1
    assert records(on_ray.stdout, Path("ray")) == records(local.stdout, Path("local"))
    assert [r["output"] for r in records(on_ray.stdout, Path("ray"))][:2] == ["OUT/b00_denoised.png",
                                                                              "OUT/b01_denoised.png"]
    assert summary(on_ray.stderr) == summary(local.stderr) == "2 done, 0 skipped, 1 failed"
    assert errors(on_ray.stderr) == errors(local.stderr)
    assert errors(on_ray.stderr)[0].startswith("error: in/c_bad.png: ")
    for name in ("b00_denoised.png", "b01_denoised.png"):
        assert (Path("ray") / name).read_bytes() == (Path("local") / name).read_bytes()


def _pool_workers() -> list[int]:
    """The processes of nafcli's Ray actor pool (Ray names them after the callable class) among this
    process's descendants: never a worker of another Ray instance on the machine."""
    children: dict[int, list[int]] = {}
    names: dict[int, bytes] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                names[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if b"MapBatches(_PoolWorker)" in names.get(child, b""):
                found.append(child)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes in /proc")
def test_a_worker_killed_mid_batch_costs_no_output(ray_instance, tmp_path: Path) -> None:
    inputs = _photos(tmp_path / "in", 40)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker_once_outputs_appear() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if out.is_dir() and any(out.glob("*_denoised.png")):
                workers = _pool_workers()
                if workers:
                    os.kill(workers[0], signal.SIGKILL)  # as the OOM killer or a lost node would
                    killed.append(workers[0])
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one_worker_once_outputs_appear)
    killer.start()
    result = denoise(tmp_path / "in", out, "--ray")
    killer.join()
    assert killed, "no worker was killed"
    assert result.exit_code == 0, result.stderr
    recs = records(result.stdout, out)
    assert [r["input"] for r in recs] == [str(p) for p in inputs]  # each job reported once, in order
    assert {r["status"] for r in recs} == {"done"}
    expected = [out / f"{p.stem}_denoised.png" for p in inputs]
    assert visible(out) == expected and all(whole(p, SIZE) for p in expected)  # none missing, all whole
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.slow
def test_ctrl_c_on_the_driver_exits_130_and_a_rerun_finishes_the_rest(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    inputs = _photos(tmp_path / "in", 40)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "NAFCLI_", "RAY_"))}
    proc = subprocess.Popen([sys.executable, "-m", "nafcli", "denoise", str(tmp_path / "in"), "-o", str(out), "-w",
                             str(TINY_WEIGHTS), "--ray"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (out.is_dir() and any(out.glob("*_denoised.png"))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr.decode()[-2000:]
    assert stderr.decode().splitlines()[-1].startswith("interrupted: ")
    expected = [out / f"{p.stem}_denoised.png" for p in inputs]
    survivors = visible(out)
    assert len(survivors) < len(expected) and all(p in expected and whole(p, SIZE) for p in survivors)

    rerun = denoise(tmp_path / "in", out, "-d", "cpu")
    assert rerun.exit_code == 0, rerun.stderr
    assert summary(rerun.stderr) == f"{len(expected) - len(survivors)} done, {len(survivors)} skipped (output exists), 0 failed"
    assert visible(out) == expected and all(whole(p, SIZE) for p in expected)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # what a killed write left is gone
