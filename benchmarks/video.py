"""Decode and encode time of the video path (nafcli.imaging.video) with an identity ``restore``.

Generates a clip (default 1280x720, 10 s, 30 fps, H.264 yuv420p with an AAC tone, as a phone would
write it; not timed), then times, each in this process:

- ``decode``: demux + decode + conversion to the RGB arrays ``restore`` receives, alone;
- ``transcode``: the whole pipeline (decode thread, identity restore on this thread, encode thread
  with the default "visually lossless" settings, audio copied), wall time and frames per second;
  ``waiting`` is the part of it this thread spent not inside ``restore``, i.e. what the video I/O adds
  when the network is fast; with a network slower than the encoder, decode and encode hide behind it.

Prints one JSON object; asserts nothing. Compare ``transcode.seconds_per_frame`` with the network's
seconds per frame at the same size (``nafcli bench``) to see the share of video I/O. Numbers on a busy
machine are indicative only.

    python benchmarks/video.py                          # 1280x720, 10 s
    python benchmarks/video.py --size 320x180 --seconds 1   # a quick check of the script itself
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_clip(path: Path, width: int, height: int, seconds: float, fps: int, codec: str) -> int:
    """A moving gradient with noise (so the encoder has real work) and a 440 Hz tone; returns frames."""
    frames = round(seconds * fps)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps, options={"preset": "veryfast", "crf": "20"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
        for i in range(frames):
            base = np.stack([(xx + 4 * i) / width, (yy + 2 * i) / height, (xx + yy) / (width + height)], -1)
            img = np.clip(base * 255 + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        total, pos = int(48000 * frames / fps), 0
        while pos < total:
            n = min(1024, total - pos)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(pos, pos + n) / 48000)).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = 48000, pos, Fraction(1, 48000)
            out.mux(aus.encode(af))
            pos += n
        out.mux(aus.encode(None))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--codec", default="libx264", help="encoder of the generated input")
    ap.add_argument("--out-codec", default=None, help="override the output encoder (default: the input's)")
    ap.add_argument("--ext", default=".mp4", help="container of input and output (default .mp4)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--queue-size", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the temporary clips")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from nafcli.imaging.video import transcode
    from nafcli.imaging.video_encode import SWS_FLAGS

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        src, dst = Path(tmp) / f"in{args.ext}", Path(tmp) / f"out{args.ext}"
        t0 = time.perf_counter()
        frames = make_clip(src, width, height, args.seconds, args.fps, args.codec)
        made = time.perf_counter() - t0

        t0 = time.perf_counter()
        with av.open(str(src)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = sum(1 for f in c.decode(stream)
                          if f.reformat(format="rgb24", interpolation=SWS_FLAGS).to_ndarray() is not None)
        decode_s = time.perf_counter() - t0

        inside = [0.0]

        def identity(batch: list[np.ndarray]) -> list[np.ndarray]:
            t = time.perf_counter()
            out = batch
            inside[0] += time.perf_counter() - t
            return out

        t0 = time.perf_counter()
        result = transcode(src, dst, identity, codec=args.out_codec, batch_size=args.batch_size,
                           queue_size=args.queue_size)
        wall = time.perf_counter() - t0
        report = {
            "clip": {"size": f"{width}x{height}", "seconds": args.seconds, "fps": args.fps, "frames": frames,
                     "codec": args.codec, "bytes": src.stat().st_size, "generate_s": round(made, 2)},
            "decode": {"frames": decoded, "seconds": round(decode_s, 3), "fps": round(decoded / decode_s, 1)},
            "transcode": {"frames": result.frames, "seconds": round(wall, 3), "fps": round(result.frames / wall, 1),
                          "seconds_per_frame": round(wall / max(1, result.frames), 5),
                          "waiting": round(wall - inside[0], 3), "codec_out": result.codec_out,
                          "pix_fmt_out": result.pix_fmt_out, "bytes": dst.stat().st_size,
                          "queue_peak": result.queue_peak, "warnings": result.warnings},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "av": av.__version__,
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
