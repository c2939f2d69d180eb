"""What running through Ray costs: items/s and per-item overhead, Ray's actor pool against a plain loop.

Prints numbers, asserts nothing. For each worker count W it runs the same items through
``nafcli.jobs.ray_backend.run_on_ray`` (W workers of ``--threads`` CPUs each, on a local instance
started once) and through a plain local loop in this process, and reports:

* Ray's start-up and shut-down (once), and the pool's start (first result minus one item's work);
* wall time and items/s of both paths; the local loop runs with ``W x --threads`` torch threads, as a
  local nafcli run uses every core it is given, and with ``--threads`` threads (a single worker's
  speed, from which the ideal W-worker time ``ceil(N / W) x t_item`` comes);
* the per-item overhead once the pool is up: ``(W x (wall - pool start) - total work) / N``, the work
  measured inside the workers (scheduling, the round trip to the driver, pickling, the attempt count).

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


def nafnet_workload(args: argparse.Namespace, threads: int) -> Workload:
    """nafcli's denoise job on generated photos, NAFNet-SIDD-width32 with random weights."""
    import numpy as np
    import torch
    from nafcli.batch import Events, OutputSpec, discover, plan, restore_job
    from nafcli.model import spec_from_config
    from PIL import Image as PILImage

    w, h = map(int, args.size.lower().split("x"))
    tmp = Path(_SCRATCH.name)
    weights, src = tmp / "NAFNet-SIDD-width32-random.pth", tmp / "in"
    if not weights.exists():  # built once per benchmark run, for every worker count and path
        torch.manual_seed(0)
        config = {"width": 32, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12,
                  "dec_blk_nums": [2, 2, 2, 2]}
        module = spec_from_config("nafnet", config).build(tlc=False)
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn_like(p) * 0.02)
        torch.save({"params": module.state_dict()}, weights)
        src.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.items):
            PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"img{i:04d}.png")
    runs = [len(list(tmp.glob("out*")))]

    def jobs() -> list[Any]:
        """A fresh output folder per run, so no run skips what an earlier one wrote."""
        runs[0] += 1
        return plan(discover([src]), OutputSpec("denoise", tmp / f"out{runs[0]}"))

    def make() -> Any:
        import torch

        from nafcli import Restorer

        torch.set_num_threads(threads)
        return restore_job(Restorer.from_file(weights, device=args.device))

    def work(job_fn: Any, job: Any) -> Any:
        return job_fn(job, Events())

    return Workload(jobs(), make, work,
                    f"nafnet: NAFNet-SIDD-width32 (random weights) on {args.items} PNGs of {w}x{h} "
                    f"on {args.device}, in {tmp}")


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
