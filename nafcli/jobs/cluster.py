"""Beyond one process: a job array's share of a batch (``--shard K/N``) and a Ray cluster (``--ray``).

Both start from the plan the driver made (discovery, output names, skip-existing, refusals), so a batch
is the same batch however it is spread, and the user sees the same progress, ``--json`` records (in job
order), summary and exit code as from a local run.

``--shard K/N`` keeps every N-th job of the planned list sorted by input path (skipped and refused jobs
included, so the split does not move when a re-run finds some outputs done): N tasks of a Slurm array or
a Kubernetes indexed job, each given the same command line, cover the batch exactly once.

``--ray`` hands the runnable jobs to :func:`~.ray_backend.run_on_ray`: an actor pool, one worker per GPU
or per ``--ray-cpus-per-worker`` CPUs, each holding one model built once (``build``, from the workflow)
and running nafcli's own job function on each job, so reading, writing (atomic, 16-bit, alpha,
metadata) and per-file errors are those of a local run. The weights are resolved, downloaded and
verified once, on the driver; the workers load them from the same cache (or ``--weights`` file), which
with the inputs and outputs must be on a filesystem every node sees at the same path
(``docs/scale-out.md``). Nothing here prints.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..errors import CheckpointError, ClusterUnavailableError, UsageError, WeightsNotAvailableError
from ..inference.allocator import worker_environment
from ..weights import hub
from .plan import Job
from .ray_backend import run_on_ray
from .ray_session import import_ray, ray_session
from .report import JobOutcome
from .runner import BatchReport, Events, JobEvents, JobResult, Work, deliver, run_jobs

T = TypeVar("T")

#: jobs each Ray worker holds at once: one computing while the next is read and the last written (its
#: :class:`_TakingTurns` job function overlaps them as the local runner does), and no round trip to
#: the driver between two jobs
IN_FLIGHT = 2

#: ``--device`` values ``--ray`` takes: Ray gives each GPU worker its own GPU, so no index is named
RAY_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ScaleOut:
    """How a batch is spread: a shard of it (``"K/N"``), and whether it runs on Ray (a local instance,
    or the cluster at ``ray_address`` as ``ray.init`` takes it; giving an address implies ``ray``)."""

    shard: str | None = None
    ray: bool = False
    ray_address: str | None = None
    #: CPUs (and torch threads) of each CPU worker; for GPU workers, CPUs reserved beside the GPU
    ray_cpus_per_worker: int | None = None

    @property
    def on_ray(self) -> bool:
        return self.ray or self.ray_address is not None


def check_scale_out(scale_out: ScaleOut, device: str) -> tuple[int, int] | None:
    """The checks of :func:`~.workflows.validate` for these options (exit code 2, before anything runs):
    the shard, the options that need ``--ray``, the devices ``--ray`` takes, and that Ray is installed
    (:class:`~nafcli.errors.MissingExtraError`). The cluster is not contacted: a batch with nothing
    left to do never connects. Returns the shard as ``(K, N)``, or None."""
    parsed = None if scale_out.shard is None else parse_shard(scale_out.shard)
    cpus = scale_out.ray_cpus_per_worker
    if cpus is not None and cpus < 1:
        raise UsageError(f"--ray-cpus-per-worker must be at least 1, not {cpus}")
    if not scale_out.on_ray:
        if cpus is not None:
            raise UsageError("--ray-cpus-per-worker needs --ray")
        return parsed
    if scale_out.ray_address is not None and not scale_out.ray_address.strip():
        raise UsageError("--ray-address: give an address (auto, HOST:PORT or ray://HOST:PORT)")
    if (device or "auto").strip().lower() not in RAY_DEVICES:
        raise UsageError(f"--device {device} with --ray: use auto, cpu or cuda (Ray places one worker on each "
                         "GPU of the cluster itself)")
    import_ray()
    return parsed


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` for ``--shard``, with ``0 <= K < N``; a :class:`UsageError` otherwise."""
    m = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if m is not None:
        k, n = int(m.group(1)), int(m.group(2))
        if 0 <= k < n:
            return k, n
    raise UsageError(f"--shard {text!r}: expected K/N with 0 <= K < N (e.g. 0/4 ... 3/4 for four machines)")


def shard(items: Sequence[T], k: int, n: int) -> list[T]:
    """Shard ``k`` of ``n``: the items at positions ``k, k + n, k + 2n, ...`` (round-robin).

    Round-robin rather than contiguous slices because the item list is sorted by path: a contiguous
    slice would give one machine a whole folder (often all the large or slow photos of one camera),
    round-robin spreads every folder over all machines. Shard sizes differ by at most one, and the
    ``n`` shards of the same list cover every item exactly once. The split depends only on the list:
    shard the full planned list (skipped jobs included), so a re-run after a partial one gives every
    machine the same items again and each resumes where it stopped.
    """
    if not 0 <= k < n:
        raise UsageError(f"--shard {k}/{n}: expected K/N with 0 <= K < N")
    return [items[i] for i in range(k, len(items), n)]


def shard_jobs(jobs: Sequence[Job], k: int, n: int) -> list[Job]:
    """Shard ``k`` of ``n`` of the planned jobs: every ``n``-th of them in the order of their input paths
    (compared as strings, so the shell's locale, which orders a glob's expansion, does not move a job
    between shards), kept in plan order. Round-robin (:func:`shard`): each folder is
    spread over all the shards."""
    order = sorted(range(len(jobs)), key=lambda i: [str(p) for p in jobs[i].inputs])
    mine = set(shard(order, k, n))
    return [job for i, job in enumerate(jobs) if i in mine]


# --- the driver ------------------------------------------------------------------------------------

#: builds a worker's job function on a Ray worker: ``build(device, threads)``
Build = Callable[[str, int], Any]


def run_on_ray_cluster(jobs: Sequence[Job], build: Build, *, scale_out: ScaleOut, device: str, threads: int,
                       events: Events, fail_fast: bool = False) -> BatchReport:
    """Run the runnable ``jobs`` on Ray, reporting every job to ``events`` in job order, as
    :func:`~.runner.run_jobs` does for a local run; the :class:`~.runner.BatchReport` the same.

    ``device`` is ``auto`` (GPU workers when the cluster has GPUs, else CPU workers), ``cpu`` or ``cuda``;
    ``threads`` the torch threads of each worker (0: the worker's CPUs, or 2 beside a GPU). A worker that
    dies has its job retried on another (the job function writes atomically and takes over the
    temporary file the dead one left); Ctrl-C stops the cluster's work and returns the results so far
    with ``interrupted`` set; ``fail_fast`` stops it after the first failure in job order (outputs other
    workers finished meanwhile stay: they are whole, and a re-run skips them).
    """
    start = time.perf_counter()
    jobs = list(jobs)
    report = BatchReport()
    order = _InOrder(jobs, events, report, fail_fast)
    runnable = [i for i, job in enumerate(jobs) if job.runnable]
    try:
        order.flush()
        if runnable:
            ray = import_ray()
            with ray_session(scale_out.ray_address):
                gpus, cpus, worker_device, worker_threads = _placement(ray, device, scale_out, threads)
                make = functools.partial(_start_worker, build, worker_device, worker_threads, os.getcwd(),
                                         _cache_environment())
                run_on_ray([jobs[i] for i in runnable], make, _run_job, num_gpus_per_worker=gpus,
                           cpus_per_worker=cpus, on_result=lambda k, r: order.arrived(runnable[k], r),
                           on_failure=_lost, in_flight_per_worker=IN_FLIGHT, concurrent=True,
                           env=worker_environment())
    except KeyboardInterrupt:
        report.interrupted = True
    except _Stopped:
        pass
    report.seconds = time.perf_counter() - start
    return report


class _Stopped(Exception):
    """Raised from a result callback to end the Ray run after a ``fail_fast`` failure."""


class _InOrder:
    """Results as they arrive, in any order, reported in job order: skipped and refused jobs at their
    turn, a runnable one once its result is in (the reporting of :func:`~.runner.run_jobs`)."""

    def __init__(self, jobs: list[Job], events: Events, report: BatchReport, fail_fast: bool) -> None:
        self.jobs = jobs
        self.events = events
        self.report = report
        self.fail_fast = fail_fast
        self.arrived_results: dict[int, JobResult] = {}
        self.next = 0

    def arrived(self, index: int, result: JobResult) -> None:
        self.arrived_results[index] = replace(result, job=self.jobs[index])  # the driver's own Job
        self.flush()

    def flush(self) -> None:
        while self.next < len(self.jobs):
            index, job = self.next, self.jobs[self.next]
            if job.runnable and index not in self.arrived_results:
                return
            self.events.job_started(job, index, len(self.jobs))
            result = self.arrived_results.pop(index) if job.runnable else JobResult.planned(job)
            self.next += 1
            if deliver(result, self.report, self.events, self.fail_fast):
                self.next = len(self.jobs)
                raise _Stopped


def _placement(ray: Any, device: str, scale_out: ScaleOut, threads: int) -> tuple[float, int | None, str, int]:
    """``(GPUs, CPUs, device, torch threads)`` of each worker, from ``--device`` and what the cluster has."""
    device = (device or "auto").strip().lower()
    cpus = scale_out.ray_cpus_per_worker
    if device == "auto":
        device = "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"
    if device == "cuda":
        return 1, cpus, "cuda", threads or min(2, cpus or 2)
    cpus = cpus or 1
    return 0, cpus, "cpu", threads or cpus


def _cache_environment() -> dict[str, str]:
    """Where the driver found the weights, for the workers' loads: its cache folders as resolved here
    (a cluster's workers inherit the environment of ``ray start``, not the driver's), the registry it
    read, and offline mode (workers never download: the driver did)."""
    env = {"HF_HUB_CACHE": str(hub.hf_hub_cache().absolute()), "NAFCLI_CACHE": str(hub.nafcli_cache().absolute()),
           "HF_HUB_OFFLINE": "1"}
    registry = os.environ.get("NAFCLI_WEIGHTS_TOML")
    if registry:
        env["NAFCLI_WEIGHTS_TOML"] = os.path.abspath(registry)
    return env


# --- on the workers --------------------------------------------------------------------------------


def _start_worker(build: Build, device: str, threads: int, cwd: str, env: dict[str, str]) -> Any:
    """A Ray worker's start: in the driver's folder (relative paths, and the messages naming them, are
    as on the driver), with its weights cache; then ``build`` makes the job function (the model loaded
    once). A node that does not see the driver's folder or weights is told apart from a broken job."""
    host = socket.gethostname()
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ClusterUnavailableError(
            f"Ray worker on {host}: cannot enter the driver's folder {cwd} ({e.strerror or e}); inputs and "
            "outputs must be on a filesystem every node sees at the same path (docs/scale-out.md)") from None
    os.environ.update(env)
    compute = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nafcli-compute")
    try:
        return _TakingTurns(compute.submit(build, device, threads).result(), compute)
    except BaseException as e:
        compute.shutdown(wait=False)  # no model, no thread for it
        if not isinstance(e, WeightsNotAvailableError | CheckpointError):
            raise
        raise ClusterUnavailableError(
            f"Ray worker on {host}: {e} (the weights the driver loaded must be on a filesystem every node sees: "
            "docs/scale-out.md)") from None


class _TakingTurns:
    """A worker's job function (a :class:`~.runner.Work`) for the worker's concurrent calls: reading and
    writing run on each call's own threads, the computes take turns on the one thread that built the
    model (one model, its threads sized for one job at a time; a ``Restorer`` is not thread-safe).

    One thread for the model, as in a local run (the main thread there): every thread that runs a
    parallel torch operation gets an OpenMP team of its own, and with more OpenMP threads alive than
    cores, libgomp stops spinning between parallel regions and puts its threads to sleep after each
    one, so a network of many short regions waits for wake-ups."""

    def __init__(self, work: Work, compute: concurrent.futures.ThreadPoolExecutor) -> None:
        self.work = work
        self._compute = compute

    def read(self, job: Job, events: JobEvents) -> Any:
        return self.work.read(job, events)

    def compute(self, job: Job, data: Any, events: JobEvents) -> Any:
        return self._compute.submit(self.work.compute, job, data, events).result()

    def write(self, job: Job, data: Any, result: Any, events: JobEvents) -> JobOutcome:
        return self.work.write(job, data, result, events)


def _run_job(work: Any, job: Job) -> JobResult:
    """One job on a worker, through :func:`~.runner.run_jobs`: its stages, warnings, per-file errors and
    timing exactly as in a local run."""
    results = run_jobs([job], work).results
    return results[0] if results else JobResult(job, "failed", error=f"{job.name}: interrupted on its Ray worker")


def _lost(job: Job, reason: str) -> JobResult:
    """A job that got no result from the cluster (its workers kept dying): a failed job, named."""
    return JobResult(job, "failed", error=f"{job.name}: {reason}")
