"""Milliseconds per NAFBlock of a fast network on one tile, level by level (forward hooks).

    PYTHONPATH=. python benchmarks/block_levels.py nafnet-sidd-width32 1024
    NAFCLI_NATIVE=0 PYTHONPATH=. python benchmarks/block_levels.py nafnet-gopro-width32 512

Random weights (the registry's architecture and TLC setting), fp32, allocator tuned as tiled runs are,
one warm-up forward, then three; the whole-forward time is their median, the per-block times are the last
forward's. Each line: (channels, map side), every block's ms, the median block, the level's sum. Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an official architecture id, e.g. nafnet-sidd-width32")
    ap.add_argument("side", type=int, help="the tile's side in pixels")
    args = ap.parse_args()

    import torch

    from nafcli.archs.fast_blocks import FastNAFBlock
    from nafcli.inference.allocator import tune
    from nafcli.weights import load

    tune()
    model = load(model=args.model, pretrained=False)
    fast = model.spec.fast(model.module.eval(), dtype=torch.float32)
    times: dict[tuple[int, int], list[float]] = collections.defaultdict(list)
    starts: dict[int, float] = {}

    def before(m: torch.nn.Module, _args: tuple) -> None:
        starts[id(m)] = time.perf_counter()

    def after(m: torch.nn.Module, args_: tuple, _out: object) -> None:
        times[(args_[0].shape[1], args_[0].shape[2])].append(time.perf_counter() - starts[id(m)])

    for m in fast.modules():
        if isinstance(m, FastNAFBlock):
            m.register_forward_pre_hook(before)
            m.register_forward_hook(after)
    x = torch.rand(1, model.in_channels * model.views, args.side, args.side)
    with torch.inference_mode():
        fast(x)
        whole = []
        for _ in range(3):
            times.clear()
            t0 = time.perf_counter()
            fast(x)
            whole.append(time.perf_counter() - t0)
    print(f"{args.model} {args.side}x{args.side} fp32: whole forward {statistics.median(whole):.3f} s")
    for (c, side), ts in sorted(times.items()):
        print(f"  {c} channels, {side} px: {[round(t * 1e3) for t in ts]} ms, median {statistics.median(ts) * 1e3:.1f} "
              f"ms, sum {sum(ts) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
