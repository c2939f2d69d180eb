"""Time and peak memory of stereo SR with the NAFSSR-L architecture on the CPU, default settings.

    PYTHONPATH=. python benchmarks/stereo.py                      # 1000x750 pair, x4, NAFSSR-L
    PYTHONPATH=. python benchmarks/stereo.py --max-strips 1       # stop after one strip (memory check)
    PYTHONPATH=. python benchmarks/stereo.py --width 200 --height 150 --blocks 4   # smoke test

Random weights (the cost does not depend on them), random pixels. The pair goes through
``Restorer.restore_pair_images`` exactly as ``nafcli sr`` runs it: ``--tile auto`` (strip height from
memory), the default overlap, the allocator settings of :mod:`nafcli.inference.allocator`. Peak memory is the process's peak RSS (``ru_maxrss``), which includes
Python, torch and the model: the number to hold against the 8 GB limit. It does not depend on machine
load; the time does, so take timings on a quiet machine. ``--max-strips K`` runs the first K strips
and then the full conversion back to images (so every phase that allocates is exercised) and
extrapolates the time to all strips; ``--run-blocks N`` builds every block but runs the first N (the
peak is the same, block activations are freed one block at a time) and scales the time up: on a busy
2-core machine a full NAFSSR-L strip takes the better part of an hour.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


class _Stop(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=1000, help="input width (columns) of each view")
    ap.add_argument("--height", type=int, default=750, help="input height (rows) of each view")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--channels", type=int, default=128, help="NAFSSR width (L: 128)")
    ap.add_argument("--blocks", type=int, default=128, help="NAFSSR blocks (L: 128)")
    ap.add_argument("--tile", default="auto")
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--max-strips", type=int, default=0, help="stop after this many strips (0: all)")
    ap.add_argument(
        "--run-blocks", type=int, default=0,
        help="build all --blocks (their weights count in the RSS, the strips are planned for them) but run "
        "only the first N: activations are freed block by block, so the peak is the same; the time is "
        "scaled up by blocks/N",
    )
    ap.add_argument(
        "--system-malloc", action="store_true",
        help="leave glibc malloc at its defaults (nafcli sr tunes it: nafcli.inference.allocator)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from nafcli.archs import NAFSSRSpec
    from nafcli.archs.state_dict import describe
    from nafcli.imaging import Image
    from nafcli.inference.allocator import tune_for_tiles
    from nafcli.inference.restorer import Restorer
    from nafcli.inference.tensors import image_to_tensor, tensor_to_image, views_to_tensor

    malloc_tuned = False if args.system_malloc else tune_for_tiles(args.tile)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = NAFSSRSpec(up_scale=args.scale, width=args.channels, num_blks=args.blocks)
    module = spec.build(tlc=True)
    model = describe(module, spec, tlc=True, source="random")
    tile: int | str = args.tile if args.tile == "auto" else int(args.tile)
    restorer = Restorer(model, device="cpu", tile=tile, overlap=args.overlap)
    kept_body = module.body  # noqa: F841 - keeps every block's weights alive with --run-blocks
    if args.run_blocks:
        module.body = torch.nn.ModuleList(list(module.body)[: args.run_blocks])
    rng = np.random.default_rng(0)
    left = Image(pixels=rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8))
    right = Image(pixels=rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8))

    strip_times: list[float] = []
    total_strips = [0]
    t_last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        strip_times.append(now - t_last[0])
        t_last[0] = now
        total_strips[0] = total
        print(f"strip {done}/{total}: {strip_times[-1]:.1f} s", file=sys.stderr, flush=True)
        if args.max_strips and done >= args.max_strips and done < total:
            raise _Stop

    # how the pair is cut (the run plans the same; a stopped run returns no RunInfo)
    cut = restorer.runner.plan(views_to_tensor([left, right]))
    warnings: list[str] = list(cut.notes)
    t0 = time.perf_counter()
    t_last[0] = t0
    partial = False
    try:
        done = restorer.restore_pair_images(left, right, progress)
        warnings = done.info.warnings
    except _Stop:
        partial = True
        # The conversion back to images allocates as much as at the end of a full run; do it too.
        x = torch.cat([image_to_tensor(left), image_to_tensor(right)], dim=1)
        y = torch.zeros((1, 6, args.height * args.scale, args.width * args.scale))
        tensor_to_image(y[:, :3], left, args.scale), tensor_to_image(y[:, 3:], right, args.scale)
        del x, y
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    est_total = elapsed if not partial else sum(strip_times) / len(strip_times) * total_strips[0]
    if args.run_blocks:
        est_total *= args.blocks / args.run_blocks
    result = {
        "input": f"{args.width}x{args.height} pair",
        "scale": args.scale,
        "arch": f"NAFSSR width {args.channels}, {args.blocks} blocks",
        "threads": torch.get_num_threads(),
        "malloc_tuned": malloc_tuned,
        "strips": cut.count,
        "grid": [1, 1] if cut.plan is None else list(cut.plan.grid),
        "strip_rows": cut.tile_size,
        "strips_run": len(strip_times),
        "blocks_run": args.run_blocks or args.blocks,
        "seconds": round(elapsed, 1),
        "seconds_all_strips_estimated": round(est_total, 1),
        "peak_rss_gib": round(peak / 2**30, 2),
        "warnings": warnings,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:30s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
