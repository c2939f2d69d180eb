"""The highest share of the 1x1 limit a TLC model can reach under ``nafcli bench``'s count, on given tiles.

    PYTHONPATH=. python benchmarks/tlc_ceiling.py                              # GoPro-width32, 2048^2, 2x2 of 1056
    PYTHONPATH=. python benchmarks/tlc_ceiling.py --tile 2048 --tiles 1        # the whole image
    PYTHONPATH=. python benchmarks/tlc_ceiling.py --limit 380 --bandwidth 38   # given figures, nothing timed

Why: issue 15 asks 85 % of the limit for NAFNet-GoPro-width32, and the count
(:func:`nafcli.quality.limit.model_flops`) leaves out work that no exact implementation can skip: the
pixels the tiles share (run once per tile, counted once), TLC's SCA product on every valid window
position (a C x C product each, at the limit's speed at best), and the box sums, which read each TLC map
twice. This prints those amounts and the share the model would reach if they ran at the limit's and the
memory's speed and every other pass (LayerNorms, depthwise 3x3s, gates, residuals) took no time: an upper
bound, not a prediction. Without ``--limit`` / ``--bandwidth`` it measures both here (the limit as bench
does, with the allocator tuned as bench's fast rows run, the bandwidth as a two-thread sum of a 143 MB map). Nothing is asserted; docs/performance.md, "How
high GoPro-width32 can go under this count", has its figures.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from nafcli.archs.blocks import NAFBlock
from nafcli.archs.fast_tlc import box_geometry
from nafcli.inference import allocator
from nafcli.quality.limit import conv1x1_shapes, measure_limit, model_flops
from nafcli.quality.measure import time_calls
from nafcli.weights import load


def memory_gb_per_second() -> float:
    """Median GB/s of summing a 143 MB float32 map (a map read once from memory, as the box sums do)."""
    x = torch.rand(143_000_000 // 4)
    seconds = time_calls(x.sum, torch.device("cpu"), 9)[1]
    return x.numel() * 4 / statistics.median(seconds) / 1e9


def tlc_work(net: torch.nn.Module, side: int) -> tuple[float, float, float]:
    """For one ``side`` x ``side`` forward: the GFLOP of the SCA products on the valid window positions,
    and the GB the box sums read (each map twice), all maps / only those above 32 MB (the rest may stay
    in a last-level cache)."""
    gflop = gb_all = gb_large = 0.0
    for block in net.modules():
        if not isinstance(block, NAFBlock) or block.sca[0].window is None:
            continue
        channels = block.sca[1].in_channels
        level = (channels // net.intro.out_channels).bit_length() - 1  # the width doubles a level
        h = w = side >> level
        k1, k2, _ = box_geometry(h, w, block.sca[0].window)  # the window as the fast path clips it
        if (k1, k2) == (h, w):
            continue  # a window over the whole map: the global mean
        gflop += (h - k1 + 1) * (w - k2 + 1) * channels * channels * 2 / 1e9
        read = 2 * channels * h * w * 4 / 1e9
        gb_all += read
        gb_large += read if read / 2 > 0.032 else 0.0
    return gflop, gb_all, gb_large


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nafnet-gopro-width32")
    ap.add_argument("--size", type=int, default=2048, help="image side")
    ap.add_argument("--tile", type=int, default=1056, help="network input side (bench's JSON: network_input)")
    ap.add_argument("--tiles", type=int, default=4, help="tiles of that side an image")
    ap.add_argument("--limit", type=float, help="GFLOP/s (default: measured here, fp32)")
    ap.add_argument("--bandwidth", type=float, help="GB/s (default: measured here)")
    args = ap.parse_args()

    allocator.tune()  # as nafcli bench's fast rows run: freed memory kept, not faulted back in a call
    net = load(model=args.model, pretrained=False).module
    image = (1, 3, args.size, args.size)
    tile = (1, 3, args.tile, args.tile)
    counted = model_flops(net, image) / 1e9
    products = sum(s.flops for s in conv1x1_shapes(net, image)) / 1e9
    per_tile = model_flops(net, tile) / 1e9
    window_gflop, gb_all, gb_large = tlc_work(net, args.tile)
    limit = args.limit or measure_limit(net, tile, torch.float32, torch.device("cpu")).gflops_per_second
    bandwidth = args.bandwidth or memory_gb_per_second()

    run = args.tiles * per_tile
    windows = args.tiles * window_gflop
    at_limit = (run + windows) / limit
    sums_low, sums_high = args.tiles * gb_large / bandwidth, args.tiles * gb_all / bandwidth
    ideal = counted / limit
    print(f"{args.model}, {args.size}^2 as {args.tiles} tile(s) of {args.tile}^2, limit {limit:.0f} GFLOP/s, "
          f"memory {bandwidth:.1f} GB/s")
    print(f"counted (bench's FLOPs): {counted:.0f} GFLOP ({products:.0f} of them 1x1 products): "
          f"{ideal:.2f} s at the limit")
    print(f"run by the tiles: {run:.0f} GFLOP ({run / counted - 1:+.1%} for the shared pixels)")
    print(f"TLC window products: {windows:.0f} GFLOP ({windows / counted:.1%} of the count)")
    print(f"TLC box sums: {args.tiles * gb_large:.2f}-{args.tiles * gb_all:.2f} GB read: "
          f"{sums_low:.2f}-{sums_high:.2f} s")
    print(f"at best: {at_limit:.2f} s + {sums_low:.2f}-{sums_high:.2f} s = "
          f"{at_limit + sums_low:.2f}-{at_limit + sums_high:.2f} s")
    print(f"ceiling of the share: {ideal / (at_limit + sums_high):.1%}-{ideal / (at_limit + sums_low):.1%}")


if __name__ == "__main__":
    main()
