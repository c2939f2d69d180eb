"""Restoring a video frame by frame: decode, ``restore``, encode, as a streamed pipeline.

Three stages overlap, joined by bounded queues, so memory stays the same whatever the video's length:

- a decode thread demuxes the input, decodes the video to RGB arrays (uint8, or uint16 for deeper
  video) and passes every other stream's packets along untouched, in file order;
- the caller's thread runs ``restore`` on batches of frames (the network runs where the caller expects
  it, and ``progress``/``warn`` are called there too);
- an encode thread converts the arrays back to the output pixel format, encodes them and muxes them
  beside the copied packets.

What is kept (timestamps, rotation, colour tags, other streams, metadata), the codec defaults and the
trimming rules are described for users in docs/video.md. The output goes to a temporary file beside
``dst``, renamed into place at the end; on any error or interrupt it is removed and the threads stop.

This module sits below the inference layer: it imports only numpy, PyAV, the standard library and
:mod:`nafcli.errors`, and never prints. Recognising and describing videos lives in
:mod:`nafcli.imaging.video_probe` (re-exported here), the decode stage and the queues in
:mod:`nafcli.imaging.video_decode`, the output side in :mod:`nafcli.imaging.video_encode`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import UsageError, VideoError, VideoWriteError
from .files import umask
from .video_decode import END, FRAME, PACKET, WARN, Channel, Decoder, Frame, Stopped, Window
from .video_encode import Output, open_output, to_video_frame
from .video_probe import (
    StreamInfo,
    VideoInfo,
    describe,
    first_frame,
    is_video,
    open_input,
    parse_time,
    probe,
    reason,
)

__all__ = ["Restore", "StreamInfo", "VideoInfo", "VideoResult", "is_video", "parse_time", "probe", "transcode"]

#: ``restore`` takes a batch of equally sized RGB frames (H x W x 3, uint8 or uint16) and returns as many
#: arrays of the same shape and dtype. The frames are lent: it may overwrite them and return them, and
#: once it returns their memory receives the results, so it must copy any it keeps for later.
Restore = Callable[[list[np.ndarray]], list[np.ndarray]]

@dataclass
class VideoResult:
    """What :func:`transcode` did; :meth:`as_dict` is JSON-friendly.

    ``duration``: the output video's span in seconds (first frame's start to last frame's end);
    ``seconds``: wall time of the call; ``truncated``: decoding stopped before the end the file
    announces; ``queue_peak``: the most frames that ever waited after decoding / after ``restore``
    (never above ``queue_size``).
    """

    src: str
    dst: str
    frames: int
    duration: float
    fps: float | None
    codec_in: str
    codec_out: str
    pix_fmt_in: str
    pix_fmt_out: str
    bit_depth: int
    container: str
    streams_copied: int
    seconds: float
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    queue_peak: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                for k, v in self.__dict__.items()}


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    restore: Restore,
    *,
    codec: str | None = None,
    crf: int | None = None,
    start: float | None = None,
    duration: float | None = None,
    batch_size: int = 1,
    queue_size: int = 8,
    progress: Callable[[int, int | None], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> VideoResult:
    """Decode ``src``, pass its frames through ``restore``, encode them into ``dst``.

    The container is chosen by ``dst``'s extension; ``codec`` (an encoder or codec name: "libx264",
    "hevc", "ffv1") and ``crf`` override the defaults of docs/video.md. ``start`` and ``duration``
    (seconds; :func:`parse_time` reads the CLI's forms) cut the video and the copied streams together.
    ``batch_size`` frames go to each ``restore`` call (fewer in the last one); at most ``queue_size``
    frames wait between two stages. ``progress(frames_done, frames_total_or_None)`` and
    ``warn(message)`` are called on the caller's thread. Raises a one-line
    :class:`~nafcli.errors.VideoError` for a file that is not a video, an unsupported codec or an
    unwritable output; a video that stops decoding part way is restored up to there, with a warning
    naming the frame. An existing ``dst`` is replaced (the caller decides whether it may be).
    """
    if batch_size < 1 or queue_size < 1:
        raise UsageError(f"batch size and queue size must be at least 1 (got {batch_size}, {queue_size})")
    if start is not None and start < 0:
        raise UsageError(f"start time must not be negative (got {start})")
    if duration is not None and duration <= 0:
        raise UsageError(f"duration must be positive (got {duration})")
    job = _Job(os.fspath(src), os.fspath(dst), restore, batch_size, queue_size, progress, warn)
    return job.run(codec, crf, start, duration)


def _mkstemp_beside(dst: Path) -> str:
    """An empty file beside ``dst`` whose name ends in ``dst``'s extension (FFmpeg picks the muxer by
    it), with the mode a plain ``open()`` gives (mkstemp's 0600 would hide the video from others)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".part{dst.suffix}", dir=dst.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
    finally:
        os.close(fd)
    return tmp


class _Job:
    """One :func:`transcode` call: the three stages and what they share."""

    def __init__(self, src: str, dst: str, restore: Restore, batch_size: int, queue_size: int,
                 progress: Callable[[int, int | None], None] | None,
                 warn: Callable[[str], None] | None) -> None:
        self.src, self.dst, self.restore = src, dst, restore
        self.batch_size = batch_size
        self.progress, self.warn_cb = progress, warn
        self.warnings: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.error_lock = threading.Lock()
        self.decoded = Channel(queue_size, self.stop)
        self.restored = Channel(queue_size, self.stop)
        self.decoder: Decoder | None = None
        self.frames_out = 0
        self.first_pts: int | None = None
        self.last_end = 0

    def _warn(self, message: str) -> None:
        """Record and report a warning (on the caller's thread only)."""
        self.warnings.append(message)
        if self.warn_cb is not None:
            self.warn_cb(message)

    def _fail(self, err: BaseException) -> None:
        with self.error_lock:
            if self.error is None:
                self.error = err
        self.stop.set()

    def _reraise(self) -> None:
        if self.error is not None:
            raise self.error
        raise VideoError(f"{self.src}: the video pipeline stopped unexpectedly")

    # --- the caller's thread -------------------------------------------------------------------------

    def run(self, codec: str | None, crf: int | None, start: float | None,
            duration: float | None) -> VideoResult:
        t0 = time.perf_counter()
        src, dst = self.src, Path(self.dst)
        container, stream = open_input(src)
        with container:
            self.info = info = describe(container, stream, first_frame(container, stream, src), src)
        if dst.exists() and os.path.samefile(src, dst):
            raise VideoWriteError(f"{dst}: is the input itself; choose another output name")
        if not dst.suffix:
            raise VideoWriteError(f"{dst}: no extension to choose the container by; use .mp4, .mkv, .mov, ...")
        self.rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
        #: one frame's length in time-base ticks, for frames that carry no duration
        self.step = max(1, round(1 / (info.frame_rate * info.time_base))) if info.frame_rate else 1
        self._set_window(start, duration)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = _mkstemp_beside(dst)
        except OSError as e:
            raise VideoWriteError(f"{dst}: cannot write ({e.strerror or e})") from None
        self.inp: av.container.InputContainer | None = None
        self.out: Output | None = None
        threads: list[threading.Thread] = []
        try:
            self.inp, self.vstream = open_input(src)
            self.out = open_output(tmp, str(dst), self.inp, self.vstream, info, codec, crf, self._warn,
                                   (self.t_start, self.t_end) if self.trimming else None)
            self._seek()
            self.decoder = Decoder(src, self.inp, self.vstream, info, self.rgb_format, self.step,
                                   Window(self.trimming, self.t_start, self.t_end), self.out.stream_map,
                                   self.decoded, self.stop)
            threads = [threading.Thread(target=self._stage, args=(self.decoder.run,), daemon=True,
                                        name="nafcli-video-decode"),
                       threading.Thread(target=self._stage, args=(self._encode,), daemon=True,
                                        name="nafcli-video-encode")]
            for t in threads:
                t.start()
            self._restore_stage()
            while threads[1].is_alive():  # the encoder finishes what is queued and closes the file
                threads[1].join(0.1)
            if self.error is not None:
                raise self.error
            try:
                os.replace(tmp, dst)
            except OSError as e:
                raise VideoWriteError(f"{dst}: cannot write ({e.strerror or e})") from None
        except BaseException:
            self.stop.set()
            for t in threads:
                t.join(10)
            if self.out is not None and not (threads and threads[1].is_alive()):
                try:
                    self.out.container.close()
                except Exception:  # the error that brought us here is the one to report
                    pass
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            if self.inp is not None and not (threads and threads[0].is_alive()):
                self.inp.close()
        return VideoResult(
            src=src, dst=str(dst), frames=self.frames_out,
            duration=float((self.last_end - (self.first_pts or 0)) * info.time_base), fps=info.fps,
            codec_in=info.codec, codec_out=self.out.plan.encoder, pix_fmt_in=info.pix_fmt,
            pix_fmt_out=self.out.plan.pix_fmt, bit_depth=16 if self.rgb_format == "rgb48le" else 8,
            container=self.out.container.format.name, streams_copied=len(self.out.stream_map),
            seconds=time.perf_counter() - t0, truncated=self.decoder.truncated, warnings=list(self.warnings),
            queue_peak={"decoded": self.decoded.peak_frames, "restored": self.restored.peak_frames},
        )

    def _set_window(self, start: float | None, duration: float | None) -> None:
        """``start``/``duration`` as absolute stream times, and the frame total to report progress by."""
        info = self.info
        self.trimming = start is not None or duration is not None
        self.t_start = info.start_time + (start or 0.0)
        self.t_end = self.t_start + duration if duration is not None else None
        self.total: int | None = info.frames
        if self.trimming:
            span = duration
            if info.duration is not None:
                left = max(0.0, info.duration - (start or 0.0))
                span = left if span is None else min(span, left)
            self.total = round(span * info.fps) if span is not None and info.fps else None

    def _seek(self) -> None:
        if self.t_start > self.info.start_time:
            try:
                self.inp.seek(int(self.t_start / self.info.time_base), stream=self.vstream, backward=True)
            except (av.FFmpegError, OSError, ValueError):
                pass  # not seekable: decoding from the beginning and dropping frames gives the same cut

    def _restore_stage(self) -> None:
        pending: list[tuple[str, Any]] = []
        frames = done = 0
        while True:
            try:
                kind, payload = self.decoded.get()
            except Stopped:
                self._reraise()
            if kind == WARN:
                self._warn(payload)
                continue
            if kind != END:
                pending.append((kind, payload))
                frames += kind == FRAME
                if frames < self.batch_size:
                    continue
            if frames:
                done += self._run_restore([p for k, p in pending if k == FRAME])
                if self.progress is not None:
                    self.progress(done, self.total)
            for k, p in pending + ([(END, None)] if kind == END else []):
                try:
                    self.restored.put(k, p, 1 if k == FRAME else 0)
                except Stopped:
                    self._reraise()
            if kind == END:
                return
            pending, frames = [], 0

    def _run_restore(self, batch: list[Frame]) -> int:
        """Call ``restore`` on a batch and put its results into the frames' own buffers (the arrays it
        was lent). Results that overlap another lent array are copied first, so any permutation or
        in-place answer is written correctly."""
        arrays = [f.pixels for f in batch]
        out = self.restore(list(arrays))
        if not isinstance(out, (list, tuple)) or len(out) != len(arrays):
            got = len(out) if isinstance(out, (list, tuple)) else type(out).__name__
            raise ValueError(f"restore returned {got} results for {len(arrays)} frames")
        for a, lent in zip(out, arrays, strict=True):
            if not isinstance(a, np.ndarray) or a.shape != lent.shape or a.dtype != lent.dtype:
                got = f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"restore returned {got} for a {lent.shape} {lent.dtype} frame")
        results = [a if a is lent or not any(np.may_share_memory(a, b) for b in arrays) else a.copy()
                   for a, lent in zip(out, arrays, strict=True)]
        for f, a in zip(batch, results, strict=True):
            if a is not f.pixels:
                np.copyto(f.pixels, a)
            f.pixels = None
        return len(batch)

    # --- the two threads -----------------------------------------------------------------------------

    def _stage(self, body: Callable[[], None]) -> None:
        try:
            body()
        except Stopped:
            pass
        except BaseException as e:  # handed to the caller's thread, which raises it
            self._fail(e)

    def _encode(self) -> None:
        """Encode restored frames and mux them beside the copied packets; close the file at the end."""
        assert self.out is not None
        out, tb = self.out, self.info.time_base
        container, video = out.container, out.video
        # Encoders such as libx264 give their packets no duration, and the muxer then guesses the last
        # frame's: give each packet the duration of the frame with its pts (held for the encoder's delay)
        durations: dict[int, int] = {}

        def mux(packets: list[av.Packet]) -> None:
            for packet in packets:
                length = durations.pop(packet.pts, 0) if packet.pts is not None else 0
                if not packet.duration and length:
                    packet.duration = length
                container.mux(packet)

        try:
            while True:
                kind, payload = self.restored.get()
                if kind == END:
                    break
                if kind == PACKET:
                    container.mux(payload)
                    continue
                frame = to_video_frame(payload.carrier, out, payload.pts, payload.duration, tb)
                payload.carrier = None
                durations[payload.pts] = payload.duration
                mux(video.encode(frame))
                if self.first_pts is None:
                    self.first_pts = payload.pts
                self.last_end = payload.pts + (payload.duration or self.step)
                self.frames_out += 1
            mux(video.encode(None))
            container.close()
        except (av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"{self.dst}: cannot write the video ({reason(e)})") from None
