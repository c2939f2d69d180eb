"""Is the device fed? The batch pipeline against its parts, on the same generated photos.

Two questions (issue 15, requirement 4), each answered by a ratio of medians over ``--repeat`` rounds:

1. **I/O**: with an *identity* network (zero compute: the decoded views come back as the result), does
   the runner (reader thread, compute on the calling thread, writer thread, bounded queues) reach the
   throughput of decoding and encoding alone, one file after the other, on the same files? Target
   ``pipeline / (decode + encode) >= 0.90`` in files per second.
2. **Compute**: with the real network, does the whole batch (discovery and planning excluded: they are
   the same in both) cost more than the network alone on the already-decoded images? Target
   ``batch / network <= 1.03`` in seconds. On a CPU the reader and writer share the cores with the
   network, so this is where decoding and encoding show.

Both rounds of a repeat run back to back, alternating, so drift in the machine's load hits both sides;
the medians are printed with every round's figures. Nothing is asserted: quote the figures only from a
quiet machine (``cat /proc/loadavg`` well below 0.5 before and after), with the CPU they came from.

    PYTHONPATH=. python benchmarks/pipeline.py --files 8 --size 1024x768 --format jpg \\
        --model nafnet-sidd-width32 --repeat 3
    PYTHONPATH=. python benchmarks/pipeline.py --files 40 --size 1024x768 --identity-only

Random weights (``nafcli.weights.load(model=ID, pretrained=False)``): the same compute as the real
weights. The photos are a natural image (scikit-image's astronaut) resized and shifted per file, so the
encoder sees photo-like content.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class Identity:
    """A restorer that returns the views it is given: the pipeline's own cost, with zero compute."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def restore_views(self, views: Sequence[Any], progress: Any = None) -> Any:
        from nafcli.inference.restorer import Restoration, RunInfo

        return Restoration(list(views), RunInfo(device="none"))


class Timed:
    """A restorer whose restore_views time is summed (the network's share of a batch)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.model, self.seconds = inner, inner.model, 0.0

    def restore_views(self, views: Sequence[Any], progress: Any = None) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.restore_views(views, progress)
        finally:
            self.seconds += time.perf_counter() - t0


def make_photos(folder: Path, count: int, width: int, height: int, fmt: str) -> list[Path]:
    import skimage.data
    from PIL import Image as PILImage

    base = np.asarray(PILImage.fromarray(skimage.data.astronaut()).resize((width, height)))
    paths = []
    for i in range(count):
        p = folder / f"img{i:04d}.{fmt}"
        PILImage.fromarray(np.roll(base, 7 * i, axis=1)).save(p)
        paths.append(p)
    return paths


def decode_encode(paths: list[Path], out: Path) -> float:
    """Seconds to read and write every file, one after the other, on this thread."""
    from nafcli.imaging.read import read_image
    from nafcli.imaging.write import write_image

    t0 = time.perf_counter()
    for p in paths:
        write_image(out / p.name, read_image(p))
    return time.perf_counter() - t0


def batch(folder: Path, out: Path, restorer: Any) -> float:
    """Seconds the runner takes over the folder (discovery and planning before the clock starts)."""
    from nafcli.jobs.discover import discover
    from nafcli.jobs.plan import OutputSpec, plan
    from nafcli.jobs.runner import run_jobs
    from nafcli.jobs.work import restore_job

    jobs = plan([[s] for s in discover([folder])], OutputSpec("denoise", out, overwrite=True))
    report = run_jobs(jobs, restore_job(restorer))
    assert report.count("done") == len(jobs), [r.error for r in report.results if r.error]
    return report.seconds


def network_alone(paths: list[Path], restorer: Any) -> float:
    """Seconds of the network on the decoded images (decoded before the clock starts)."""
    from nafcli.imaging.read import read_image

    images = [read_image(p) for p in paths]
    t0 = time.perf_counter()
    for image in images:
        restorer.restore_views([image])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--size", default="1024x768", help="WxH")
    ap.add_argument("--format", default="jpg", choices=["png", "jpg", "webp", "tif"])
    ap.add_argument("--model", default="nafnet-sidd-width32", help="official architecture id (random weights)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--identity-only", action="store_true", help="only question 1 (no network)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))

    import torch

    from nafcli.inference.allocator import tune
    from nafcli.inference.restorer import Restorer
    from nafcli.inference.settings import configure_threads
    from nafcli.weights import load

    threads = configure_threads(args.threads, torch.device("cpu"))
    tune()  # as the command line does for tiled runs
    model = load(model=args.model, pretrained=False)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        out.mkdir()
        paths = make_photos(src, args.files, w, h, args.format)
        print(f"{args.files} files {w}x{h} {args.format}, {threads} torch threads")

        identity = Identity(model)
        batch(src, out, identity)  # warm-up: imports, first encoder use
        io_alone, io_pipe = [], []
        for _ in range(args.repeat):
            io_alone.append(decode_encode(paths, out))
            io_pipe.append(batch(src, out, identity))
        a, p = statistics.median(io_alone), statistics.median(io_pipe)
        print(f"decode + encode alone: {args.files / a:.2f} files/s (median of {[round(t, 3) for t in io_alone]} s)")
        print(f"pipeline, identity network: {args.files / p:.2f} files/s (median of {[round(t, 3) for t in io_pipe]} s)")
        print(f"  pipeline / (decode + encode) = {a / p:.3f} (target >= 0.90)")
        if args.identity_only:
            return

        restorer = Restorer(model, device="cpu", precision=args.precision, compile=False)
        timed = Timed(restorer)
        network_alone(paths[:1], restorer)  # warm-up: the first tile shape, oneDNN primitives
        nets, batches, inside = [], [], []
        for _ in range(args.repeat):
            nets.append(network_alone(paths, restorer))
            timed.seconds = 0.0
            batches.append(batch(src, out, timed))
            inside.append(timed.seconds)
        n, b = statistics.median(nets), statistics.median(batches)
        print(f"network alone: {n:.2f} s (median of {[round(t, 2) for t in nets]})")
        print(f"whole batch:   {b:.2f} s (median of {[round(t, 2) for t in batches]}; the network inside it: "
              f"{[round(t, 2) for t in inside]} s)")
        print(f"  batch / network = {b / n:.3f} (target <= 1.03)")


if __name__ == "__main__":
    main()
