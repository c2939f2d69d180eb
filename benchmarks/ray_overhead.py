"""What running through Ray costs: items/s and per-item overhead, Ray's actor pool against a plain loop.

Prints numbers, asserts nothing. For each worker count W it runs the same items through
``nafcli.jobs.ray_backend.run_on_ray`` (W workers of ``--threads`` CPUs each, on a local instance
started once) and through a plain local loop in this process, and reports:

* Ray's start-up and shut-down (once), and the pool's start (first result minus one item's work);
* wall time and items/s of both paths; the local loop runs with ``W x --threads`` torch threads, as a
  local nafcli run uses every core it is given, and with ``--threads`` threads (a single worker's
  speed, from which the ideal W-worker time ``ceil(N / W) x t_item`` comes);
* the per-item scheduling overhead: per worker process, the time between two consecutive results
  minus the work the second one did (measured inside the worker), median and 90th percentile.

Workloads (``--workload``):

* ``spin``: ``--cost-ms`` of torch matrix products per item (0 measures pure scheduling);
* ``nafnet``: nafcli's real denoise job (read, restore, write atomically) with NAFNet-SIDD-width32 and
  random weights on ``--items`` generated photos of ``--size``; the issue's target is
  ``--workload nafnet --items 100 --size 816x612`` (half a megapixel) with Ray at most 10 % slower
  than the local run;
* ``MODULE:FUNCTION``: your own, ``FUNCTION(args, threads) -> Workload`` (see :class:`Workload`).

Smoke runs on a shared machine only (the figures mean something on a quiet one):

    python benchmarks/ray_overhead.py --workload spin --items 40 --cost-ms 50 --workers 1,2
    python benchmarks/ray_overhead.py --workload nafnet --items 4 --size 256x256 --workers 1
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

    torch.set_num_threads(threads)
    a = torch.randn(256, 256)
    reps = 0
    if args.cost_ms > 0:
        t0, n = time.perf_counter(), 50
        for _ in range(n):
            a @ a
        reps = max(1, round(args.cost_ms / 1000 / ((time.perf_counter() - t0) / n)))

    def make() -> Any:
        import torch

        torch.set_num_threads(threads)
        return torch.randn(256, 256)

    def work(state: Any, item: int) -> int:
        for _ in range(reps):
            state @ state
        return item

    return Workload(list(range(args.items)), make, work,
                    f"spin: {reps} products of 256^2 per item (~{args.cost_ms} ms on {threads} threads here)")


def nafnet_workload(args: argparse.Namespace, threads: int) -> Workload:
    """nafcli's denoise job on generated photos, NAFNet-SIDD-width32 with random weights."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    from nafcli.batch import Events, OutputSpec, discover, plan, restore_job
    from nafcli.model import spec_from_config

    w, h = map(int, args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="ray_overhead_"))
    weights = tmp / "NAFNet-SIDD-width32-random.pth"
    torch.manual_seed(0)
    config = {"width": 32, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]}
    module = spec_from_config("nafnet", config).build(tlc=False)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
    torch.save({"params": module.state_dict()}, weights)
    src = tmp / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(args.items):
        PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"img{i:04d}.png")
    runs = [0]

    def jobs() -> list[Any]:
        """A fresh output folder per run, so no run skips what an earlier one wrote."""
        runs[0] += 1
        return plan(discover([src]), OutputSpec("denoise", tmp / f"out{runs[0]}"))

    def make() -> Any:
        import torch

        from nafcli import Restorer

        torch.set_num_threads(threads)
        return restore_job(Restorer.from_file(weights, device="cpu"))

    def work(job_fn: Any, job: Any) -> Any:
        return job_fn(job, Events())

    class FreshJobs(Sequence):  # each len()/iteration of a run plans again into a new folder
        def __init__(self) -> None:
            self._jobs = jobs()

        def __len__(self) -> int:
            return len(self._jobs)

        def __getitem__(self, i: Any) -> Any:
            return self._jobs[i]

    return Workload(FreshJobs(), make, work,
                    f"nafnet: NAFNet-SIDD-width32 (random weights) on {args.items} PNGs of {w}x{h}, in {tmp}")


def load_workload(args: argparse.Namespace, threads: int) -> Workload:
    if args.workload == "spin":
        return spin_workload(args, threads)
    if args.workload == "nafnet":
        return nafnet_workload(args, threads)
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


def ray_run(load: Callable[[int], Workload], workers: int, threads: int) -> dict[str, Any]:
    from nafcli.jobs.ray_backend import run_on_ray

    wl = load(threads)
    items = list(wl.items)
    arrivals: list[tuple[float, float, int]] = []  # (arrival time, work seconds, pid)

    def on_result(index: int, r: tuple[Any, float, int]) -> None:
        arrivals.append((time.perf_counter(), r[1], r[2]))

    t0 = time.perf_counter()
    run_on_ray(items, wl.make_worker, timed(wl.work), workers=workers, cpus_per_worker=threads,
               on_result=on_result)
    wall = time.perf_counter() - t0
    gaps: list[float] = []
    for pid in {a[2] for a in arrivals}:
        mine = sorted(a for a in arrivals if a[2] == pid)
        gaps += [b[0] - a[0] - b[1] for a, b in zip(mine, mine[1:], strict=False)]
    work_mean = statistics.fmean(a[1] for a in arrivals)
    return {"wall": wall, "n": len(items), "first": arrivals[0][0] - t0 - arrivals[0][1],
            "work_mean": work_mean, "gaps": sorted(gaps), "pids": len({a[2] for a in arrivals})}


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="spin", help="spin, nafnet or MODULE:FUNCTION")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--cost-ms", type=float, default=50.0, help="spin: CPU time per item")
    ap.add_argument("--size", default="816x612", help="nafnet: WxH of the generated photos")
    ap.add_argument("--workers", default="1,2", help="worker counts to try, e.g. 1,2")
    ap.add_argument("--threads", type=int, default=1, help="CPUs (torch threads) per worker")
    args = ap.parse_args()
    counts = [int(c) for c in args.workers.split(",")]

    from nafcli.jobs.ray_backend import import_ray, ray_session

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
            r = ray_run(load, w, args.threads)
            n = r["n"]
            ideal = math.ceil(n / w) * one["per_item"]
            print(f"\n{w} worker(s) x {args.threads} thread(s), {n} items")
            print(f"  local, {args.threads} thread(s):   {one['wall']:8.2f} s  {n / one['wall']:7.2f} items/s  "
                  f"({one['per_item'] * 1000:.1f} ms/item, worker set-up {one['make']:.2f} s)")
            if allc is not one:
                print(f"  local, {threads_all} threads:      {allc['wall']:8.2f} s  {n / allc['wall']:7.2f} items/s  "
                      f"({allc['per_item'] * 1000:.1f} ms/item)")
            print(f"  ray:                   {r['wall']:8.2f} s  {n / r['wall']:7.2f} items/s  "
                  f"({r['pids']} worker processes, work {r['work_mean'] * 1000:.1f} ms/item inside them)")
            print(f"  ray vs local ({threads_all} threads): {100 * (r['wall'] / allc['wall'] - 1):+.1f} % wall; "
                  f"vs ideal ceil(N/W) x t_item = {ideal:.2f} s: {100 * (r['wall'] / ideal - 1):+.1f} %")
            print(f"  pool start (first result less its work): {r['first']:.2f} s")
            print(f"  per-item overhead (gap between a worker's results less its work): "
                  f"median {pct(r['gaps'], 0.5) * 1000:.1f} ms, p90 {pct(r['gaps'], 0.9) * 1000:.1f} ms")
    finally:
        t1 = time.perf_counter()
        session.__exit__(None, None, None)
        print(f"\nray shut down in {time.perf_counter() - t1:.2f} s")


if __name__ == "__main__":
    main()
