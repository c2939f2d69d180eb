"""Seconds per tile of the fast path (the architecture's ``spec.fast``), one model, one precision, some tile sizes.

    PYTHONPATH=. python benchmarks/fast_tile.py nafnet-gopro-width32 fp32 560
    PYTHONPATH=. python benchmarks/fast_tile.py nafnet-sidd-width32 bf16 560,1056 --tune-allocator

Random weights (``nafcli.weights.load(model=ID, pretrained=False)``), one random tile per size, a warm-up call and the median of
three. No tiler, no image I/O: the number is the network alone, to compare levers one at a time (run it
on two checkouts, e.g. ``git worktree add /tmp/before REV``, with and without ``--tune-allocator``).
Peak RSS is the process's high-water mark so far. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an official architecture id, e.g. nafnet-sidd-width32")
    ap.add_argument("precision", choices=["fp32", "bf16"])
    ap.add_argument("sizes", help="comma-separated tile sides, e.g. 560,1056")
    ap.add_argument("--tune-allocator", action="store_true", help="apply nafcli.inference.allocator.tune() first")
    args = ap.parse_args()

    import torch

    from nafcli.weights import load

    if args.tune_allocator:
        from nafcli.inference.allocator import tune

        print(f"allocator tuned: {tune()}")
    model = load(model=args.model, pretrained=False)  # the registry's architecture and TLC setting
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.precision]
    fast = model.spec.fast(model.module.eval(), dtype=dtype)
    with torch.inference_mode():
        for side in (int(s) for s in args.sizes.split(",")):
            x = torch.rand(1, model.in_channels * model.views, side, side)  # a stereo model takes a pair
            fast(x)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                fast(x)
                times.append(time.perf_counter() - start)
            med = statistics.median(times)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(f"{args.model} {args.precision} {side}x{side}: {med:.3f} s  {side * side / med / 1e6:.3f} MP/s  "
                  f"peak RSS {rss:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
