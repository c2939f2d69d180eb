"""Spreading a batch without Ray: every device of the machine (``--device all``), several workers in one
process, and job arrays (``--shard K/N``); and ``--ray`` where Ray is not installed.

Each spread run is held against the plain one-device run of the same batch (a corpus of the formats photos
come in, one unreadable file, one output already there): the same files byte for byte, the same --json
records, summary, error lines and exit code. The Ray runs are in tests/test_cluster_ray.py.
"""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import pytest
import torch
from helpers.images import TINY_WEIGHTS, write_variants
from helpers.runs import cli, errors, records, summary, written

from nafcli.errors import UsageError
from nafcli.jobs import workflows
from nafcli.jobs.cluster import shard_jobs
from nafcli.jobs.plan import Job
from nafcli.jobs.ray_session import MISSING_RAY
from nafcli.jobs.work import ImageWork

pytestmark = pytest.mark.skipif(not TINY_WEIGHTS.exists(), reason="../shared/reference/pipeline is not here")

#: an output already there before each run: skipped, and left as it was
DONE_BEFORE = "rgb8_denoised.png"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scale") / "in"
    write_variants(folder)
    (folder / "bad.png").write_text("not an image")
    return folder


def run(corpus: Path, out: Path, *extra: str | Path):  # noqa: ANN201
    out.mkdir(parents=True, exist_ok=True)
    if not (out / DONE_BEFORE).exists():
        (out / DONE_BEFORE).write_bytes(b"done before")
    return cli("denoise", corpus, "-o", out, "-w", TINY_WEIGHTS, "--json", *extra)


@pytest.fixture(scope="module")
def one_device(corpus: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The plain run: one device (the CPU)."""
    out = tmp_path_factory.mktemp("one") / "out"
    return out, run(corpus, out, "--device", "cpu")


def assert_same_run(a: tuple, b: tuple) -> None:
    (out_a, ra), (out_b, rb) = a, b
    assert (ra.exit_code, rb.exit_code) == (1, 1)  # the unreadable file
    assert written(out_a) == written(out_b)
    assert records(ra.stdout, out_a) == records(rb.stdout, out_b)
    assert summary(ra.stderr) == summary(rb.stderr) == "13 done, 1 skipped (output exists), 1 failed"
    assert errors(ra.stderr) == errors(rb.stderr) and len(errors(rb.stderr)) == 1


# --- every device of one machine ---------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="--device all means the CUDA devices here")
def test_device_all_on_a_cpu_only_machine_is_the_one_device_run(corpus: Path, one_device, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_same_run(one_device, (out, run(corpus, out, "--device", "all")))


def test_two_workers_in_one_process_write_what_one_writes(corpus: Path, one_device, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The several-devices path of the workflow (one Restorer per device, the weights copied, one compute
    thread each) run on two CPU workers, since no GPU is here: the devices are made two CPUs."""
    monkeypatch.setattr(workflows, "resolve_devices", lambda spec: [torch.device("cpu")] * 2)
    both_busy = threading.Barrier(2, timeout=120)  # the first two images are computed at the same time
    seen: list[tuple[str, int]] = []
    compute = ImageWork.compute

    def spy(self, job, images, events):  # noqa: ANN001, ANN202
        seen.append((threading.current_thread().name, id(self.restorer)))
        if len(seen) <= 2:
            both_busy.wait()
        return compute(self, job, images, events)

    monkeypatch.setattr(ImageWork, "compute", spy)
    out = tmp_path / "out"
    assert_same_run(one_device, (out, run(corpus, out, "--device", "all")))
    assert {name for name, _ in seen} == {"nafcli-compute-0", "nafcli-compute-1"}
    assert len({restorer for _, restorer in seen}) == 2  # a model per worker


# --- job arrays ----------------------------------------------------------------------------------------


def _jobs(names: list[str]) -> list[Job]:
    """Planned jobs as the planner makes them: some skipped, some refused."""
    jobs = []
    for i, name in enumerate(names):
        src = Path("photos") / name
        job = Job((src,), (Path("out") / name,))
        if i % 5 == 1:
            job.skip, job.skip_kind = "exists", "output exists"
        elif i % 7 == 3:
            job.problem = f"{src}: would overwrite an input"
        jobs.append(job)
    return jobs


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 30])
def test_the_shards_cover_every_planned_job_once(n: int) -> None:
    names = [f"{d}/img{i:02d}.png" for d in ("a", "b", "c") for i in range(7)]
    jobs = _jobs(names)
    shards = [shard_jobs(jobs, k, n) for k in range(n)]
    ids = [id(j) for s in shards for j in s]
    assert sorted(ids) == sorted(id(j) for j in jobs)  # every job, skipped and refused too, exactly once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    for s in shards:  # each shard keeps the plan's order
        assert [jobs.index(j) for j in s] == sorted(jobs.index(j) for j in s)
    # the same shards whatever order the inputs came in (a shell's glob order follows its locale)
    shuffled = jobs[:]
    random.Random(n).shuffle(shuffled)
    for k in range(n):
        assert {id(j) for j in shard_jobs(shuffled, k, n)} == {id(j) for j in shards[k]}
    if n > 1:  # round-robin: a folder is spread over the shards
        assert all({j.inputs[0].parent.name for j in s} == {"a", "b", "c"} for s in shards if len(s) >= 3)


def test_shards_of_a_batch_through_the_cli_make_the_whole_batch(corpus: Path, one_device, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = [run(corpus, out, "--device", "cpu", "--shard", f"{k}/3") for k in range(3)]
    base_out, base = one_device
    assert written(out) == written(base_out)
    got = [r for result in results for r in records(result.stdout, out)]
    expected = records(base.stdout, base_out)
    key = lambda r: r["input"]  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)  # every job in exactly one shard
    assert [result.exit_code for result in results].count(1) == 1  # the shard holding the bad file
    assert all(len(records(r.stdout, out)) in (5, 6) for r in results)

    # a re-run of a shard takes the same jobs (now done: skipped), so array tasks re-run after a failure
    # or a pre-emption resume their own share
    again = run(corpus, out, "--device", "cpu", "--shard", "1/3")
    assert [r["input"] for r in records(again.stdout, out)] == [r["input"] for r in records(results[1].stdout, out)]
    assert {r["status"] for r in records(again.stdout, out)} <= {"skipped", "failed"}


def test_a_shard_with_nothing_in_it_succeeds(corpus: Path, tmp_path: Path) -> None:
    result = run(corpus, tmp_path / "out", "--device", "cpu", "--shard", "99/100")
    assert result.exit_code == 0 and result.stdout == ""
    assert summary(result.stderr) == "0 done, 0 skipped, 0 failed"


def test_a_bad_shard_is_refused_before_anything() -> None:
    with pytest.raises(UsageError, match=r"^--shard '3/3': expected K/N with 0 <= K < N"):
        workflows.validate("denoise", workflows.ModelChoice(weights=TINY_WEIGHTS), workflows.RunSettings(device="cpu"),
                           workflows.OutputOptions(), workflows.ScaleOut(shard="3/3"))


# --- --ray without Ray ---------------------------------------------------------------------------------


@pytest.mark.parametrize("option", [["--ray"], ["--ray-address", "auto"], ["--ray", "--shard", "0/2"]])
def test_ray_without_the_extra_is_one_line_and_exit_2(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      option: list[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    out = tmp_path / "out"
    result = cli("denoise", corpus, "-o", out, "-w", TINY_WEIGHTS, *option)
    assert result.exit_code == 2
    assert result.stderr == f"error: {MISSING_RAY}\n" and result.stdout == ""
    assert MISSING_RAY == '--ray needs the optional extra: pip install "nafcli[ray]"'
    assert not out.exists()  # refused before anything was planned or written


def test_ray_workers_are_started_on_one_malloc_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker computes on a thread of its own, whose glibc arena would map every large feature map
    anew (tests/test_allocator.py): nafcli starts its workers with ``MALLOC_ARENA_MAX=1``, and without
    it when the allocator tuning is turned off."""
    import contextlib

    from nafcli.jobs import cluster
    from nafcli.jobs.runner import Events

    seen: list[dict] = []

    def fake_run_on_ray(items, make, work, **kwargs):  # noqa: ANN001, ANN202 - stands in for Ray
        seen.append(dict(kwargs["env"]))
        return []

    monkeypatch.setattr(cluster, "import_ray", lambda: None)
    monkeypatch.setattr(cluster, "ray_session", lambda address: contextlib.nullcontext())
    monkeypatch.setattr(cluster, "run_on_ray", fake_run_on_ray)
    jobs = [Job((Path("in.png"),), (Path("out.png"),))]
    events = Events()
    for tuning in ("1", "0"):
        monkeypatch.setenv("NAFCLI_MALLOC_TUNING", tuning)
        cluster.run_on_ray_cluster(jobs, lambda device, threads: None, scale_out=cluster.ScaleOut(ray=True),
                                   device="cpu", threads=1, events=events)
    assert seen == [{"MALLOC_ARENA_MAX": "1"}, {}]
