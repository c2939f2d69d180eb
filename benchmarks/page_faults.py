"""Page faults and seconds of each forward of a fast network on one tile, with the allocator tuned.

    PYTHONPATH=. python benchmarks/page_faults.py nafnet-sidd-width32 1056
    TRIM=2147483647 PYTHONPATH=. python benchmarks/page_faults.py nafnet-gopro-width32 2048

Random weights, fp32, eight forwards of one random tile; ``TRIM`` replaces the allocator's trim threshold
(``nafcli.inference.allocator.TRIM_THRESHOLD``, -1: never trim) for the run, in bytes; the peak resident
memory is printed at the end. In steady state a forward should fault almost
no page: one that faults ~1 GB every other time has its freed memory trimmed from the heap between
forwards. Whether that happens depends on the heap's layout: a version of this script that imported its
modules in another order alternated 61 k and 244 k faults a forward with a 1 GB threshold (2.24-2.73 s)
and faulted 2 with 2 GB (2.22-2.25 s); this one faults 2 with either. The threshold only decides how much
freed memory may be kept. Nothing is asserted.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import torch

from nafcli.inference import allocator
from nafcli.weights import load


def main() -> None:
    model_id, side = sys.argv[1], int(sys.argv[2])
    allocator.TRIM_THRESHOLD = int(os.environ.get("TRIM", allocator.TRIM_THRESHOLD))
    tuned = allocator.tune()
    model = load(model=model_id, pretrained=False)
    fast = model.spec.fast(model.module.eval(), dtype=torch.float32)
    x = torch.rand(1, 3, side, side)
    print(f"allocator tuned: {tuned}, trim threshold {allocator.TRIM_THRESHOLD}")
    with torch.inference_mode():
        for i in range(8):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = time.perf_counter()
            fast(x)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
            print(f"forward {i}: {time.perf_counter() - t:.3f} s, {faults} page faults")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"peak resident memory: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
