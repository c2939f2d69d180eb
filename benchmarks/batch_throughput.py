"""Batch throughput and memory: N generated photos of a given size through the denoise batch path.

Prints files/s, MP/s, the per-file overhead (discovery, planning, reading, writing: everything but the
network) and the peak RSS. Never asserted on; the lead takes the final numbers on a quiet machine.

    python benchmarks/batch_throughput.py --weights ../shared/reference/pipeline/denoise-nafnet.pth \
        --files 20 --size 256x256 --format jpg
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--size", default="256x256", help="WxH")
    ap.add_argument("--format", default="png", choices=["png", "jpg", "webp", "tif"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))

    import skimage.data
    from PIL import Image as PILImage

    from nafcli import Restorer
    from nafcli.jobs.discover import discover
    from nafcli.jobs.plan import OutputSpec, plan
    from nafcli.jobs.runner import Events, run_jobs
    from nafcli.jobs.work import restore_job

    base = np.asarray(PILImage.fromarray(skimage.data.astronaut()).resize((w, h)))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(args.files):
            PILImage.fromarray(np.roll(base, 7 * i, axis=1)).save(src / f"img{i:04d}.{args.format}")
        restorer = Restorer.from_file(args.weights, device=args.device)

        class Timer(Events):
            net = 0.0

        timer = Timer()
        real = restorer.restore_views

        def timed(views, progress=None):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            out = real(views, progress)
            timer.net += time.perf_counter() - t
            return out

        restorer.restore_views = timed  # type: ignore[method-assign]
        t0 = time.perf_counter()
        jobs = plan([[s] for s in discover([src])], OutputSpec("denoise", Path(tmp) / "out"))
        t_plan = time.perf_counter() - t0
        report = run_jobs(jobs, restore_job(restorer), events=timer)
    n = report.count("done")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"files: {n} of {args.files}, {w}x{h} {args.format}, device {args.device}")
    print(f"discover+plan: {t_plan * 1e3:.1f} ms")
    print(f"batch: {report.seconds:.2f} s, {n / report.seconds:.2f} files/s, "
          f"{report.megapixels / report.seconds:.3f} MP/s")
    print(f"network: {timer.net:.2f} s; per-file overhead (I/O, metadata): "
          f"{(report.seconds - timer.net) / max(n, 1) * 1e3:.1f} ms")
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
