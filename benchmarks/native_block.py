"""One NAFBlock: the native kernels' two passes against the oneDNN block, on one map.

    PYTHONPATH=. python benchmarks/native_block.py 32 1024
    PYTHONPATH=. python benchmarks/native_block.py 256 128

Random weights, global SCA, fp32, allocator tuned, torch's threads; median of 7 after a warm-up. Prints
the native front and back passes (each with its 1x1 GFLOP/s), the hybrid block (oneDNN's products with the
native LayerNorm and depthwise gate: what runs beyond ``whole_block_limit()``) and the oneDNN block (the
fused path that runs without the native kernels). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def _median_ms(fn: Callable[[], object], reps: int = 7) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("channels", type=int)
    ap.add_argument("side", type=int)
    args = ap.parse_args()

    import torch

    from nafcli.archs import native
    from nafcli.archs.blocks import NAFBlock
    from nafcli.archs.fast_blocks import FastNAFBlock
    from nafcli.inference.allocator import tune

    tune()
    lib = native.load()
    if not isinstance(lib, native.Library):
        raise SystemExit(f"native kernels unavailable: {lib}")
    c, side = args.channels, args.side
    torch.manual_seed(0)
    ref = NAFBlock(c)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    block = FastNAFBlock(ref, None).eval()
    w = native.Prepared.of(lib, block.conv1, block.conv2, block.conv3, block.conv4, block.conv5, block.eps1, block.eps2)
    inp = torch.randn(1, c, side, side).contiguous(memory_format=torch.channels_last)
    x = inp.permute(0, 2, 3, 1)
    g, out = torch.empty_like(x), torch.empty_like(x)
    sums, scale = torch.empty((1, c), dtype=torch.float64), torch.rand(1, 1, 1, c)
    threads = torch.get_num_threads()
    p = native.nafblock._ptr

    def front() -> None:
        lib.cdll.nb_front(c, p(x), 1, side, side, p(w.w1t), p(w.b1), p(w.dwt), p(w.dwb), w.eps1, p(g), p(sums),
                          threads)

    def back() -> None:
        lib.cdll.nb_back(c, p(x), p(g), 1, side, side, p(scale), 1, 1, 0, 0, p(w.w3t), p(w.b3), p(w.w4t), p(w.b4),
                         p(w.w5t), p(w.b5), w.eps2, p(out), threads)

    unit = 2 * side * side * c * c / 1e6  # MFLOP of one c -> c product
    with torch.inference_mode():
        tf, tb = _median_ms(front), _median_ms(back)
        tonednn = _median_ms(lambda: block._forward_fused(inp))
        thybrid = _median_ms(lambda: block._forward_hybrid(inp, lib))
    print(f"{c} channels, {side}x{side}, {threads} threads: native front {tf:.1f} ms ({2 * unit / tf:.0f} GFLOP/s), "
          f"back {tb:.1f} ms ({4 * unit / tb:.0f} GFLOP/s), together {tf + tb:.1f} ms; hybrid block {thybrid:.1f} ms; "
          f"oneDNN block {tonednn:.1f} ms")


if __name__ == "__main__":
    main()
