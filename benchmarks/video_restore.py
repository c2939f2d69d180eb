"""Restoring a video with the network: frames per second, and how much of the time decoding and encoding
add on top of the network (the overlap of docs/video.md should hide them: target at most 5 %).

Generates a clip (default 1280x720, 10 s, 30 fps, H.264 yuv420p with an AAC tone, as
``benchmarks/video.py`` makes it; not timed), loads NAFNet-SIDD-width32 with random weights
(``nafcli.weights.load(model=..., pretrained=False)``: same architecture and cost as the real one, no
download) and measures, on the first ``--frames`` frames of the clip (the network takes seconds per
720p frame on a CPU, so the whole 10 s is extrapolated from that prefix at the measured rate):

- ``network``: the same frames decoded beforehand and held in memory, restored by
  ``Restorer.restore_frames`` one pass after another: the network alone, no video I/O at all;
- ``video``: ``Restorer.restore_video`` on that prefix (``duration=``), as ``nafcli denoise clip.mp4
  --duration ...`` runs it: decode thread, network on this thread, encode thread (libx264, CRF 17,
  preset medium), sound copied; wall time, frames per second, and the part of the wall time this thread
  spent outside ``restore_frames`` (waiting for decoded frames or for room in the encoder's queue);
- ``io``: the same prefix through the pipeline with an identity restore (decode + encode alone).

``overhead_share`` = (video wall - network alone) / video wall: what decoding and encoding cost the run,
whether as waiting or as CPU time taken from the network (on a 2-core machine the encoder's threads
share the cores with the network's). ``io_share`` = io wall / video wall: the decode + encode work
measured alone, against the whole. Prints one JSON object; asserts nothing; a busy machine's numbers are
not worth keeping (the load average is printed before and after).

    python benchmarks/video_restore.py                                 # 1280x720, 10 s clip, 12-frame prefix
    python benchmarks/video_restore.py --frames 30 --network-frames 8
    python benchmarks/video_restore.py --size 320x180 --seconds 1 --frames 4   # a quick check of the script
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent


def _clip_maker():  # noqa: ANN202 - benchmarks/video.py's make_clip (benchmarks is not a package)
    spec = importlib.util.spec_from_file_location("video_bench", HERE / "video.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.make_clip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=12, help="frames restored in the timed video run (a prefix)")
    ap.add_argument("--network-frames", type=int, default=6, help="frames restored by the network alone")
    ap.add_argument("--model", default="nafnet-sidd-width32", help="registry id (random weights of its architecture)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch-size", default=None, help="frames per pass (default: as the CLI, auto)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: as the CLI)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the temporary clips")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from nafcli.imaging.video import transcode
    from nafcli.imaging.video_encode import SWS_FLAGS
    from nafcli.inference.allocator import tune_for_tiles
    from nafcli.inference.restorer import Restorer
    from nafcli.inference.settings import configure_threads, resolve_device
    from nafcli.weights import load

    report: dict = {"cpu": cpu_model(), "loadavg_before": loadavg(), "av": av.__version__}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        src, dst, ident = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4", Path(tmp) / "identity.mp4"
        t0 = time.perf_counter()
        total_frames = _clip_maker()(src, width, height, args.seconds, args.fps, "libx264")
        report["clip"] = {"size": f"{width}x{height}", "seconds": args.seconds, "fps": args.fps,
                          "frames": total_frames, "codec": "h264", "generate_s": round(time.perf_counter() - t0, 1)}
        prefix = min(args.frames, total_frames)
        span = prefix / args.fps

        device = resolve_device(args.device)
        configure_threads(args.threads, device)
        tune_for_tiles("auto")
        restorer = Restorer(load(model=args.model, pretrained=False), device=device, precision=args.precision,
                            batch_size=args.batch_size)
        per_pass = restorer.frames_per_pass(height, width)

        # the network alone, on frames decoded beforehand (the first pass is a warm-up, not timed)
        from nafcli.imaging.image import Image

        with av.open(str(src)) as c:
            held = []
            for f in c.decode(video=0):
                held.append(f.reformat(format="rgb24", interpolation=SWS_FLAGS).to_ndarray())
                if len(held) >= args.network_frames + per_pass:
                    break
        restorer.restore_frames([Image(pixels=a.copy()) for a in held[:per_pass]])
        timed = held[per_pass:]
        t0 = time.perf_counter()
        for i in range(0, len(timed), per_pass):
            restorer.restore_frames([Image(pixels=a) for a in timed[i:i + per_pass]])
        net_s = time.perf_counter() - t0
        net_spf = net_s / max(1, len(timed))
        report["network"] = {"frames": len(timed), "seconds": round(net_s, 2), "seconds_per_frame": round(net_spf, 3),
                             "fps": round(1 / net_spf, 4), "frames_per_pass": per_pass}

        # the whole video path on the prefix; time inside restore_frames measured around it
        inside = [0.0]
        real = restorer.restore_frames

        def counted(frames, progress=None):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            try:
                return real(frames, progress)
            finally:
                inside[0] += time.perf_counter() - t

        restorer.restore_frames = counted  # type: ignore[method-assign]
        t0 = time.perf_counter()
        result = restorer.restore_video(src, dst, duration=span)
        wall = time.perf_counter() - t0
        restorer.restore_frames = real  # type: ignore[method-assign]
        frames = result.frames
        report["video"] = {"frames": frames, "seconds": round(wall, 2), "fps": round(frames / wall, 4),
                           "seconds_per_frame": round(wall / max(1, frames), 3),
                           "outside_restore_s": round(wall - inside[0], 2),
                           "outside_restore_share": round((wall - inside[0]) / wall, 4),
                           "codec_out": result.codec_out, "queue_peak": result.queue_peak}

        t0 = time.perf_counter()
        io = transcode(src, ident, lambda batch: batch, duration=span)
        io_s = time.perf_counter() - t0
        report["io"] = {"frames": io.frames, "seconds": round(io_s, 3), "fps": round(io.frames / io_s, 1)}

    network_alone = net_spf * frames
    report["overhead_share"] = round((wall - network_alone) / wall, 4)
    report["io_share"] = round(io_s / wall, 4)
    report["extrapolated_full_clip_s"] = round(total_frames * wall / max(1, frames), 1)
    report["loadavg_after"] = loadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
