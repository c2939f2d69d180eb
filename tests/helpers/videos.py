"""Clips the video tests make themselves with PyAV: a few dozen small frames of a moving pattern, a sine
tone, and whatever else a test needs to see kept (rotation, colour tags, chapters, subtitles)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["TB", "decoded", "make_clip", "packets", "pattern"]

TB = Fraction(1, 1000)


def pattern(i: int, w: int, h: int, *, smooth: bool = False, deep: bool = False) -> np.ndarray:
    """Frame ``i`` of a moving test pattern, RGB. ``smooth``: gentle gradients, for codecs and pixel
    formats that subsample chroma (sharp edges would measure the subsampling, not the pipeline)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if smooth:
        rgb = np.stack([0.5 + 0.4 * np.sin((xx + 2 * i) / 9), 0.5 + 0.4 * np.cos((yy + i) / 7),
                        0.5 + 0.4 * np.sin((xx + yy + 3 * i) / 13)], -1)
    else:
        rgb = np.stack([(xx * 4 + i * 8) % 256, (yy * 5 + i * 3) % 256, ((xx + yy) * 2 + i * 16) % 256], -1) / 255
    if deep:
        return np.round(rgb * 65535).astype(np.uint16)
    return np.round(rgb * 255).astype(np.uint8)


def make_clip(path: Path, *, codec: str = "ffv1", pix_fmt: str = "bgr0", frames: int = 24, size=(64, 48),
              fps: int = 25, vfr: bool = False, audio: str | None = "flac", rotation: int | None = None,
              colour: tuple[int, int, int, int] | None = None, smooth: bool = False,
              options: dict | None = None, chapters: bool = False, subtitles: bool = False,
              sar: Fraction | None = None) -> Path:
    """A clip with a video stream in time base 1/1000 (constant ``fps``, or frame lengths cycling 20,
    35, 50 ms) and, optionally, a mono 440 Hz tone as long as the video, SubRip lines every 8 frames,
    chapters; with metadata to keep."""
    w, h = size
    deep = pix_fmt.endswith(("10le", "12le", "16le"))
    with av.open(str(path), "w", options=options or {}) as out:
        out.metadata["title"] = "nafcli test clip"
        out.metadata["creation_time"] = "2024-05-01T12:34:56.000000Z"
        if chapters:  # two chapters splitting the clip at 0.8 s
            length = frames * 1000 // fps
            out.set_chapters([{"id": 1, "start": 0, "end": 800, "time_base": TB, "metadata": {"title": "one"}},
                              {"id": 2, "start": 800, "end": length, "time_base": TB,
                               "metadata": {"title": "two"}}])
        vs = out.add_stream(codec, rate=fps, options={"x265-params": "log-level=none"} if codec == "libx265" else {})
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = vs.codec_context.time_base = TB
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if sar is not None:
            vs.codec_context.sample_aspect_ratio = sar
        if colour is not None:
            cc = vs.codec_context
            cc.color_range, cc.color_primaries, cc.color_trc, cc.colorspace = colour
        if audio:
            aus = out.add_stream(audio, rate=48000)
            aus.layout = "mono"
            aus.metadata["language"] = "fra"
        if subtitles:
            subs = out.add_mux_stream("subrip")
            subs.time_base = TB
            subs.metadata["language"] = "eng"
        t = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, w, h, smooth=smooth, deep=deep),
                                               format="rgb48le" if deep else "rgb24")
            if colour is not None:
                frame.color_range, frame.colorspace = colour[0], colour[3]
            frame = frame.reformat(format=pix_fmt)
            if colour is not None:
                frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace = colour
            length = (20 + (i % 3) * 15) if vfr else 1000 // fps
            frame.pts, frame.time_base, frame.duration = t, TB, length
            out.mux(vs.encode(frame))
            if subtitles and i % 8 == 0:
                line = av.Packet(f"line {i}".encode())
                line.pts = line.dts = t
                line.duration, line.time_base, line.stream = 150, TB, subs
                out.mux(line)
            t += length
        out.mux(vs.encode(None))
        if audio:
            fmt = aus.codec_context.format.name
            total, pos = 48 * t, 0
            while pos < total:
                n = min(1024, total - pos)
                tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(pos, pos + n) / 48000)[None]
                samples = tone.astype(np.float32) if fmt.startswith("flt") else (tone * 32767).astype(np.int16)
                af = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, pos, Fraction(1, 48000)
                out.mux(aus.encode(af))
                pos += n
            out.mux(aus.encode(None))
    return path


def decoded(path: Path, fmt: str = "rgb24") -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format=fmt)) for f in c.decode(video=0)]


def packets(path: Path, kind: str = "audio") -> list[tuple[int, bytes]]:
    with av.open(str(path)) as c:
        stream = next(s for s in c.streams if s.type == kind)
        return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]


def audio_only(src: Path, dst: Path) -> Path:
    """``src``'s audio stream remuxed alone into ``dst`` (a file with no video stream)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        a = o.add_stream_from_template(i.streams.audio[0])
        for p in i.demux(i.streams.audio[0]):
            if p.size:
                p.stream = a
                o.mux(p)
    return dst
