"""What running through Ray costs: images (items) per second and per-item overhead, Ray against local.

Prints numbers, asserts nothing. Two kinds of measurement (``--workload``):

``nafnet``: the issue's figure, end to end. nafcli's denoise batch (``workflows.restore_paths``: discovery,
plan, the weights checked on the driver, read, restore, atomic write, results in job order) with
NAFNet-SIDD-width32 and random weights on ``--items`` generated photos of ``--size``, run locally and with
``--ray``, alternately, ``--repeat`` times each (medians). For W workers of ``--threads`` threads the local
run has ``W x --threads`` torch threads in one process and the Ray run a local instance of
``W x --threads`` CPUs with one worker per ``--threads`` CPUs, so both use the same cores. Reported: wall
time and images/s of both, Ray's extra wall time in per cent, the instance's start and stop (apart: a
cluster is started once for many runs; a ``--ray`` run without an address pays them, also shown), the
pool's start (first result less its work), the seconds per image per worker once the pool is up, and
the per-image overhead against the local run, ``(Ray wall - local wall) / N`` (each Ray worker holds two
jobs, one computing while the other is read or written, so a job's own timing includes its wait). The 1-minute load average
before and after each run is printed: take the figures on a quiet machine only. The target
(issue 13): ``--workload nafnet --items 100 --size 816x612 --workers 1,2`` (half a megapixel), Ray at
most 10 % slower than local.

``spin`` (or ``MODULE:FUNCTION``, ``FUNCTION(args, threads) -> Workload``): the backend alone,
``nafcli.jobs.ray_backend.run_on_ray`` against a plain loop in this process, on ``--cost-ms`` of torch
matrix products per item (0 measures pure scheduling): Ray's start, the pool's start, items/s, and the
per-item overhead as above; the loop runs with ``W x --threads`` threads and with ``--threads`` (a single
worker's speed, from which the ideal W-worker time ``ceil(N / W) x t_item`` comes).

Smoke runs (on a shared machine the figures mean little):

    python benchmarks/ray_overhead.py --workload spin --items 40 --cost-ms 50 --workers 1,2
    python benchmarks/ray_overhead.py --workload nafnet --items 4 --size 256x256 --workers 1

The full run (several minutes per configuration and path):

    python benchmarks/ray_overhead.py --workload nafnet --items 100 --size 816x612 --workers 2,1 --repeat 3
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: generated inputs and weights (nafnet workload), removed when the benchmark ends
_SCRATCH = tempfile.TemporaryDirectory(prefix="ray_overhead_")
#: the spin workload's calibration
_SPIN: dict[str, int] = {}


@dataclass
class Workload:
    """Items and the two functions ``run_on_ray`` takes; ``make_worker`` must set its own thread count
    (``threads`` is passed to the factory) so that both paths compute with the same cores."""

    items: Sequence[Any]
    make_worker: Callable[[], Any]
    work: Callable[[Any, Any], Any]
    describe: str = ""


def spin_workload(args: argparse.Namespace, threads: int) -> Workload:
    """Fixed CPU work per item: 256x256 float32 matrix products, calibrated to ``--cost-ms`` here."""
    import torch

    if "reps" not in _SPIN:  # calibrated once, on one thread, so every path does the same work
        torch.set_num_threads(1)
        a = torch.randn(256, 256)
        reps = 0
        if args.cost_ms > 0:
            t0, n = time.perf_counter(), 50
            for _ in range(n):
                a @ a
            reps = max(1, round(args.cost_ms / 1000 / ((time.perf_counter() - t0) / n)))
        _SPIN["reps"] = reps
    reps = _SPIN["reps"]
    torch.set_num_threads(threads)

    def make() -> Any:
        import torch

        torch.set_num_threads(threads)
        return torch.randn(256, 256)

    def work(state: Any, item: int) -> int:
        for _ in range(reps):
            state @ state
        return item

    return Workload(list(range(args.items)), make, work,
                    f"spin: {reps} products of 256^2 per item (~{args.cost_ms} ms on 1 thread here)")


def nafnet_corpus(args: argparse.Namespace) -> tuple[Path, Path]:
    """``--items`` photos of ``--size`` (a smooth scene with sensor-like noise, so PNG compresses them as it
    does photos) and a checkpoint of NAFNet-SIDD-width32 with random weights, made once per benchmark."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    from nafcli.weights import load

    w, h = map(int, args.size.lower().split("x"))
    tmp = Path(_SCRATCH.name)
    weights, src = tmp / "NAFNet-SIDD-width32-random.pth", tmp / "in"
    if not weights.exists():
        model = load(model="nafnet-sidd-width32", pretrained=False)  # seeded: the same weights every run
        torch.save({"params": model.module.state_dict()}, weights)
        src.mkdir()
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for i in range(args.items):
            scene = np.stack([128 + 100 * np.sin((xx + 13 * i) / (40 + c * 17)) * np.cos(yy / (55 + c * 9))
                              for c in range(3)], axis=-1)
            noisy = np.clip(scene + rng.normal(0, 12, scene.shape), 0, 255).astype(np.uint8)
            PILImage.fromarray(noisy).save(src / f"img{i:04d}.png")
    return src, weights


def _noting_events() -> Any:
    """An ``Events`` that notes when each job is reported (the first result marks the pool's start)."""
    from nafcli.jobs.runner import Events

    class Noted(Events):
        def __init__(self) -> None:
            self.times: list[float] = []

        def job_finished(self, result: Any) -> None:
            self.times.append(time.perf_counter())

    return Noted()


def nafnet_run(src: Path, weights: Path, *, threads: int, ray: bool, device: str, run_id: str) -> dict[str, Any]:
    """One end-to-end batch through :func:`nafcli.jobs.workflows.restore_paths`, as ``nafcli denoise`` runs
    it: locally with ``threads`` torch threads, or on the Ray instance this process is connected to with
    one worker per ``threads`` CPUs. Returns wall time, the workers' busy seconds per image and the time
    to the first result."""
    import shutil

    from nafcli.jobs import workflows

    out = Path(_SCRATCH.name) / f"out-{run_id}"
    noted = _noting_events()
    scale_out = workflows.ScaleOut(ray=True, ray_cpus_per_worker=threads) if ray else workflows.ScaleOut()
    load_before = _loadavg()
    t0 = time.perf_counter()
    report = workflows.restore_paths(
        [src], task="denoise", model=workflows.ModelChoice(weights=weights),
        run=workflows.RunSettings(device=device, threads=threads), output=workflows.OutputOptions(output=out),
        events=noted, scale_out=scale_out)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    done = [r for r in report.results if r.status == "done"]
    if len(done) != len(report.results):
        raise SystemExit(f"{run_id}: {len(report.results) - len(done)} images failed: {report.results[0].error}")
    return {"wall": wall, "n": len(done), "busy": [r.seconds for r in done], "start": t0, "reported": noted.times,
            "load": (load_before, _loadavg())}


def _steady(r: dict[str, Any], workers: int) -> tuple[float, float, float]:
    """``(pool start, seconds per image per worker in the steady state, end)`` of a run.

    The pool's start is the time to the first result less its work; the steady state lies between the
    first and the last result, during which the W workers finish ``N - W`` images; the end is what
    follows the last result (the pipeline's shut-down)."""
    times, n = r["reported"], r["n"]
    start = times[0] - r["start"] - r["busy"][0]
    per_image = workers * (times[-1] - times[0]) / (n - workers) if n > workers else float("nan")
    end = r["start"] + r["wall"] - times[-1]
    return start, per_image, end


def _loadavg() -> float:
    """The 1-minute load average (what "a quiet machine" is judged by)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return float("nan")


def nafnet_main(args: argparse.Namespace, counts: list[int]) -> None:
    """The issue's figure: the Ray path against the plain local run, end to end, for 1 and 2 workers.

    For W workers of ``--threads`` threads, the local run has ``W x --threads`` torch threads (one process
    using the same cores) and the Ray run a local instance of ``W x --threads`` CPUs (started before the
    timing; its start-up is reported apart) with one worker per ``--threads`` CPUs. Runs alternate local
    and Ray, ``--repeat`` times each; medians are reported, with the load average around every run.
    """
    from nafcli.jobs.ray_session import import_ray, ray_session

    ray = import_ray()
    src, weights = nafnet_corpus(args)
    print(f"nafnet: NAFNet-SIDD-width32 (random weights) on {args.items} PNGs of {args.size} on {args.device}; "
          f"ray {ray.__version__}; {args.repeat} run(s) of each path, medians")
    for w in counts:
        cpus = w * args.threads
        t0 = time.perf_counter()
        session = ray_session(num_cpus=cpus)
        session.__enter__()
        started = time.perf_counter() - t0
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        try:
            for rep in range(args.repeat):
                for path in ("local", "ray"):
                    r = nafnet_run(src, weights, threads=cpus if path == "local" else args.threads,
                                   ray=path == "ray", device=args.device, run_id=f"{w}-{path}-{rep}")
                    runs[path].append(r)
                    print(f"  {w} worker(s), {path:5s} run {rep + 1}: {r['wall']:8.2f} s  "
                          f"(load {r['load'][0]:.2f} -> {r['load'][1]:.2f})", flush=True)
        finally:
            t1 = time.perf_counter()
            session.__exit__(None, None, None)
            stopped = time.perf_counter() - t1
        med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
        n = runs["local"][0]["n"]
        # the work of the images after each worker's first (which pays one-off costs: oneDNN's kernels)
        work = statistics.median(statistics.fmean(r["busy"][w:] or r["busy"]) for r in runs["ray"])
        start, per_image, end = (statistics.median(x) for x in zip(*(_steady(r, w) for r in runs["ray"]), strict=True))
        print(f"\n{w} worker(s) x {args.threads} thread(s), {n} images (medians of {args.repeat})")
        print(f"  local, {cpus} thread(s), one process: {med['local']:8.2f} s  {n / med['local']:6.3f} images/s  "
              f"({1000 * med['local'] / n:.0f} ms/image)")
        print(f"  ray, {w} worker(s) x {args.threads} thread(s):  {med['ray']:8.2f} s  {n / med['ray']:6.3f} images/s  "
              f"({100 * (med['ray'] / med['local'] - 1):+.1f} % wall vs local)")
        print(f"    local Ray instance: started in {started:.2f} s, stopped in {stopped:.2f} s (a --ray run without "
              f"an address pays both: {100 * ((med['ray'] + started + stopped) / med['local'] - 1):+.1f} % vs local)")
        print(f"    pool start (workers started, model loaded; first result less its work): {start:.2f} s; "
              f"after the last result: {end:.2f} s")
        print(f"    steady state: {1000 * per_image:.0f} ms per image per worker; per-image overhead against the "
              f"local run: {1000 * (med['ray'] - med['local']) / n:+.1f} ms (wall difference / images)")
        print(f"    (the workers' own timing of a job, {1000 * work:.0f} ms, includes waiting for its turn at the "
              "model: each worker holds two jobs, one computing while the other is read or written)")


def load_workload(args: argparse.Namespace, threads: int) -> Workload:
    if args.workload == "spin":
        return spin_workload(args, threads)
    module, _, func = args.workload.partition(":")
    return getattr(importlib.import_module(module), func)(args, threads)


def timed(work: Callable[[Any, Any], Any]) -> Callable[[Any, Any], tuple[Any, float, int]]:
    """``work`` that also returns its own duration and process id (for the overhead figures)."""

    def run(state: Any, item: Any) -> tuple[Any, float, int]:
        t0 = time.perf_counter()
        result = work(state, item)
        return result, time.perf_counter() - t0, os.getpid()

    return run


def local_run(load: Callable[[int], Workload], threads: int) -> dict[str, float]:
    wl = load(threads)
    t0 = time.perf_counter()
    state = wl.make_worker()
    t_make = time.perf_counter() - t0
    items = list(wl.items)
    t1 = time.perf_counter()
    for item in items:
        wl.work(state, item)
    wall = time.perf_counter() - t1
    return {"make": t_make, "wall": wall, "per_item": wall / len(items), "n": len(items)}


def ray_run(load: Callable[[int], Workload], workers: int, threads: int, in_flight: int,
            gpus: float) -> dict[str, Any]:
    from nafcli.jobs.ray_backend import run_on_ray

    wl = load(threads)
    items = list(wl.items)
    arrivals: list[tuple[float, float, int]] = []  # (arrival time, work seconds, pid)

    def on_result(index: int, r: tuple[Any, float, int]) -> None:
        arrivals.append((time.perf_counter(), r[1], r[2]))

    t0 = time.perf_counter()
    run_on_ray(items, wl.make_worker, timed(wl.work), workers=workers, cpus_per_worker=threads,
               on_result=on_result, in_flight_per_worker=in_flight, num_gpus_per_worker=gpus)
    wall = time.perf_counter() - t0
    first = min(a[0] for a in arrivals) - t0 - arrivals[0][1]  # the pool's start, less one item's work
    pids = {a[2] for a in arrivals}
    # what the workers spent on anything but the work once the pool was up, per item
    overhead = (len(pids) * (wall - first) - sum(a[1] for a in arrivals)) / len(items)
    return {"wall": wall, "n": len(items), "first": first, "overhead": overhead,
            "work_mean": statistics.fmean(a[1] for a in arrivals), "pids": len(pids)}


def vs(t: float, ideal: float) -> str:
    return f"{100 * (t / ideal - 1):+.1f} %" if ideal > 1e-3 else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="spin", help="spin, nafnet or MODULE:FUNCTION")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--cost-ms", type=float, default=50.0, help="spin: CPU time per item")
    ap.add_argument("--size", default="816x612", help="nafnet: WxH of the generated photos")
    ap.add_argument("--workers", default="1,2", help="worker counts to try, e.g. 1,2")
    ap.add_argument("--threads", type=int, default=1, help="CPUs (torch threads) per worker")
    ap.add_argument("--device", default="cpu", help="nafnet: cpu, cuda, ...")
    ap.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per Ray worker (1: one per GPU)")
    ap.add_argument("--in-flight", default="1", help="in_flight_per_worker values to try, e.g. 1,2")
    ap.add_argument("--repeat", type=int, default=1, help="nafnet: runs of each path (medians reported)")
    args = ap.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    if args.workload == "nafnet":
        nafnet_main(args, counts)
        return

    from nafcli.jobs.ray_session import import_ray, ray_session

    ray = import_ray()

    def load(threads: int) -> Workload:
        return load_workload(args, threads)

    print(load(args.threads).describe)
    t0 = time.perf_counter()
    session = ray_session(num_cpus=max(os.cpu_count() or 1, max(counts) * args.threads))
    session.__enter__()
    print(f"ray {ray.__version__}: local instance started in {time.perf_counter() - t0:.2f} s")
    try:
        for w in counts:
            threads_all = w * args.threads
            one = local_run(load, args.threads)
            allc = one if threads_all == args.threads else local_run(load, threads_all)
            n = one["n"]
            ideal = math.ceil(n / w) * one["per_item"]
            print(f"\n{w} worker(s) x {args.threads} thread(s), {n} items")
            print(f"  local, {args.threads} thread(s):   {one['wall']:8.2f} s  {n / one['wall']:7.2f} items/s  "
                  f"({one['per_item'] * 1000:.1f} ms/item, worker set-up {one['make']:.2f} s)")
            if allc is not one:
                print(f"  local, {threads_all} threads:      {allc['wall']:8.2f} s  {n / allc['wall']:7.2f} items/s  "
                      f"({allc['per_item'] * 1000:.1f} ms/item)")
            for in_flight in (int(f) for f in args.in_flight.split(",")):
                r = ray_run(load, w, args.threads, in_flight, args.gpus_per_worker)
                steady = r["wall"] - r["first"]
                print(f"  ray, {in_flight} in flight/worker: {r['wall']:6.2f} s  {n / r['wall']:7.2f} items/s  "
                      f"({r['pids']} worker processes, work {r['work_mean'] * 1000:.1f} ms/item inside them)")
                print(f"    vs local ({threads_all} threads): {100 * (r['wall'] / allc['wall'] - 1):+.1f} % wall; "
                      f"vs ideal ceil(N/W) x t_item = {ideal:.2f} s: {vs(r['wall'], ideal)}")
                print(f"    pool start (first result less its work): {r['first']:.2f} s; after it: "
                      f"{steady:.2f} s, {vs(steady, ideal)} vs ideal")
                print(f"    per-item overhead (worker time after the pool start less the work, per item): "
                      f"{r['overhead'] * 1000:.1f} ms")
    finally:
        t1 = time.perf_counter()
        session.__exit__(None, None, None)
        print(f"\nray shut down in {time.perf_counter() - t1:.2f} s")


if __name__ == "__main__":
    main()
