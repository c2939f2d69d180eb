"""Tiled inference: peak memory and time by image size, and speed of tiles against the whole image.

    python benchmarks/tiling.py memory            # 1, 6, 24, 96 MP, default settings, CPU
    python benchmarks/tiling.py memory --mp 0.1 0.5
    python benchmarks/tiling.py speed             # MP/s whole image vs default tiles at 1024^2 and 2048^2
    python benchmarks/tiling.py speed --sides 256 512

The network is the NAFNet-SIDD-width32 architecture (29.2 M parameters) with random weights; the image is
random 8-bit RGB at 3:2 (24 MP = 6000 x 4000). Each measurement runs in a fresh Python process, so peak
RSS (``ru_maxrss``) is that run's alone: it includes Python, torch and the model (~0.35 GB), the 8-bit
image, its float32 copies in and out, and the activations of one tile. Nothing is asserted on time.
The allocator is tuned as the command line tunes it (:mod:`nafcli.inference.allocator`); run with
``NAFCLI_MALLOC_TUNING=0`` for glibc's defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO.parent / "shared" / "reference" / "manifests" / "nafnet-sidd-width32.json"
#: the config of NAFNet-SIDD-width32 (as in the manifest, used when ../shared is absent)
CONFIG = {"width": 32, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]}


def _config() -> dict:
    if MANIFEST.is_file():
        return json.loads(MANIFEST.read_text())["config"]
    return CONFIG


def _dims(mp: float) -> tuple[int, int]:
    """(height, width) at 3:2 for ``mp`` megapixels: 24 -> 4000 x 6000."""
    w = round(math.sqrt(mp * 1e6 * 1.5))
    return round(w / 1.5), w


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import resource

    import numpy as np
    import torch

    from nafcli.archs import spec_from_config
    from nafcli.archs.state_dict import describe
    from nafcli.imaging import Image
    from nafcli.inference.allocator import tune_for_tiles
    from nafcli.inference.restorer import Restorer

    malloc_tuned = tune_for_tiles(args.tile)  # as the command line runs (NAFCLI_MALLOC_TUNING=0: never)
    torch.manual_seed(0)
    spec = spec_from_config("nafnet", _config())
    module = spec.build(tlc=False)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(0.5)  # random weights, kept moderate so activations stay finite
    model = describe(module, spec, tlc=False, source="random NAFNet-SIDD-width32")
    restorer = Restorer(model, device="cpu", tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    h, w = args.h, args.w
    image = Image(pixels=np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    start = time.perf_counter()
    info = restorer.restore_image(image).info
    seconds = time.perf_counter() - start
    print(json.dumps({
        "h": h, "w": w, "mp": h * w / 1e6, "tile": info.tile_size, "grid": list(info.grid),
        "seconds": seconds, "mp_per_s": h * w / 1e6 / seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "malloc_tuned": malloc_tuned,
    }))


def _run(h: int, w: int, tile: str, overlap: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "child", "--h", str(h), "--w", str(w), "--tile", tile]
    if overlap is not None:
        cmd += ["--overlap", overlap]
    env = {"PYTHONPATH": str(REPO)}
    import os

    env = {**os.environ, **env}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(args: argparse.Namespace) -> None:
    print(f"{'MP':>6} {'size':>13} {'grid':>7} {'seconds':>9} {'MP/s':>7} {'peak RSS':>9}")
    for mp in args.mp:
        h, w = _dims(mp)
        r = _run(h, w, args.tile, args.overlap)
        grid = "x".join(map(str, r["grid"]))
        print(f"{r['mp']:6.2f} {w:>6}x{h:<6} {grid:>7} {r['seconds']:9.1f} {r['mp_per_s']:7.3f} "
              f"{r['peak_rss_gb']:7.2f} GB", flush=True)


def speed(args: argparse.Namespace) -> None:
    print(f"{'size':>11} {'whole MP/s':>11} {'tiled MP/s':>11} {'grid':>6} {'speed-up':>9}")
    for side in args.sides:
        whole = _run(side, side, "0")
        tiled = _run(side, side, args.tile, args.overlap)
        grid = "x".join(map(str, tiled["grid"]))
        print(f"{side:>5}x{side:<5} {whole['mp_per_s']:11.3f} {tiled['mp_per_s']:11.3f} {grid:>6} "
              f"{tiled['mp_per_s'] / whole['mp_per_s']:8.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("memory", help="peak RSS and time by image size (default settings)")
    m.add_argument("--mp", type=float, nargs="+", default=[1, 6, 24, 96])
    s = sub.add_parser("speed", help="MP/s: whole image against default tiles")
    s.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    c = sub.add_parser("child")
    c.add_argument("--h", type=int, required=True)
    c.add_argument("--w", type=int, required=True)
    for p in (m, s, c):
        p.add_argument("--tile", default="auto", help="as nafcli's --tile (default: auto)")
        p.add_argument("--overlap", default=None, help="as nafcli's --overlap (default: the default)")
        p.add_argument("--batch-size", default="auto")
    args = ap.parse_args()
    {"memory": memory, "speed": speed, "child": child}[args.cmd](args)


if __name__ == "__main__":
    main()
