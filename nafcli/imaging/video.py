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
:mod:`nafcli.imaging.video_probe` (re-exported here), the output side in
:mod:`nafcli.imaging.video_encode`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from nafcli.errors import UsageError, VideoError, VideoReadError, VideoWriteError
from nafcli.imaging.video_encode import Output, open_output, to_rgb, to_video_frame
from nafcli.imaging.video_probe import (
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

_FRAME, _PACKET, _WARN, _END = "frame", "packet", "warn", "end"
#: consecutive undecodable video packets after which the rest of the file is given up as corrupt
_MAX_BAD_PACKETS = 50


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


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the caller was interrupted."""


class _Channel:
    """A FIFO between two stages, bounded in frames (the memory that matters) and in items (so a long
    run of packets without frames cannot grow it either). Waits poll the shared stop event, so a stage
    blocked here notices within 0.1 s that the pipeline is stopping."""

    def __init__(self, max_frames: int, stop: threading.Event, max_items: int = 4096) -> None:
        self.max_frames = max_frames
        self.max_items = max_items
        self.peak_frames = 0
        self.full = threading.Event()  # set whenever a put has to wait for room
        self._stop = stop
        self._items: deque[tuple[str, Any, int]] = deque()
        self._frames = 0
        self._cond = threading.Condition()

    def put(self, kind: str, payload: Any = None, frames: int = 0) -> None:
        with self._cond:
            while self._stop.is_set() or self._frames + frames > self.max_frames \
                    or len(self._items) >= self.max_items:
                if self._stop.is_set():
                    raise _Stopped
                self.full.set()
                self._cond.wait(0.1)
            self._items.append((kind, payload, frames))
            self._frames += frames
            self.peak_frames = max(self.peak_frames, self._frames)
            self._cond.notify_all()

    def get(self) -> tuple[str, Any]:
        with self._cond:
            while not self._items or self._stop.is_set():
                if self._stop.is_set():
                    raise _Stopped
                self._cond.wait(0.1)
            kind, payload, frames = self._items.popleft()
            self._frames -= frames
            self._cond.notify_all()
            return kind, payload


@dataclass
class _Frame:
    """A decoded frame on its way: ``pixels`` is a view of ``carrier``'s RGB buffer, what ``restore``
    gets; the restored pixels are written back into that buffer, so one frame costs one RGB image."""

    pixels: np.ndarray | None
    carrier: av.VideoFrame
    pts: int
    duration: int


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


def _umask() -> int:
    """The process umask, read from /proc on Linux: setting it to read it back would race with other
    threads creating files (POSIX has no getter); elsewhere that is the only way."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp_beside(dst: Path) -> str:
    """An empty file beside ``dst`` whose name ends in ``dst``'s extension (FFmpeg picks the muxer by
    it), with the mode a plain ``open()`` gives (mkstemp's 0600 would hide the video from others)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".part{dst.suffix}", dir=dst.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return tmp


def _seconds(packet: av.Packet) -> float:
    t = packet.pts if packet.pts is not None else packet.dts
    return float(t * packet.time_base) if t is not None and packet.time_base else 0.0


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
        self.decoded = _Channel(queue_size, self.stop)
        self.restored = _Channel(queue_size, self.stop)
        self.truncated = False
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
            threads = [threading.Thread(target=self._stage, args=(self._decode,), daemon=True,
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
            os.replace(tmp, dst)
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
            seconds=time.perf_counter() - t0, truncated=self.truncated, warnings=list(self.warnings),
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
            except _Stopped:
                self._reraise()
            if kind == _WARN:
                self._warn(payload)
                continue
            if kind != _END:
                pending.append((kind, payload))
                frames += kind == _FRAME
                if frames < self.batch_size:
                    continue
            if frames:
                done += self._run_restore([p for k, p in pending if k == _FRAME])
                if self.progress is not None:
                    self.progress(done, self.total)
            for k, p in pending + ([(_END, None)] if kind == _END else []):
                try:
                    self.restored.put(k, p, 1 if k == _FRAME else 0)
                except _Stopped:
                    self._reraise()
            if kind == _END:
                return
            pending, frames = [], 0

    def _run_restore(self, batch: list[_Frame]) -> int:
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
        except _Stopped:
            pass
        except BaseException as e:  # handed to the caller's thread, which raises it
            self._fail(e)

    def _decode(self) -> None:
        """Demux everything, decode the video, hand frames and copied packets on in file order."""
        assert self.inp is not None and self.out is not None
        info, tb, vindex = self.info, self.info.time_base, self.vstream.index
        copied = self.out.stream_map
        self.vstream.thread_type = "AUTO"
        eps = 1e-6
        shift = round(self.t_start / tb) if self.trimming else 0
        state = {"sent": 0, "last": None, "last_end": None, "fixed": False, "resized": False, "done": False}
        step = self.step

        def emit(frame: av.VideoFrame) -> None:
            pts = frame.pts if frame.pts is not None else (state["last"] + step if state["last"] is not None
                                                           else 0)
            t = float(pts * tb)
            if self.trimming and t < self.t_start - eps:
                return
            if self.t_end is not None and t >= self.t_end - eps:
                state["done"] = True
                return
            if state["last"] is not None and pts <= state["last"]:
                pts = state["last"] + 1
                if not state["fixed"]:
                    state["fixed"] = True
                    self.decoded.put(_WARN, f"{self.src}: timestamps go backwards at frame {state['sent']}; "
                                            "moved forward to keep the order")
            if (frame.width, frame.height) != (info.width, info.height) and not state["resized"]:
                state["resized"] = True
                self.decoded.put(_WARN, f"{self.src}: the frame size changes at frame {state['sent']} "
                                        f"({frame.width}x{frame.height}); scaled to {info.width}x{info.height}")
            carrier = to_rgb(frame, self.rgb_format, info.width, info.height)
            self.decoded.put(_FRAME, _Frame(carrier.to_ndarray(), carrier, pts - shift, frame.duration or 0), 1)
            state["sent"] += 1
            state["last"] = pts
            state["last_end"] = pts + (frame.duration or step)

        bad, first_bad, stopped = 0, None, None
        ended: set[int] = set()
        streams = [self.vstream] + [self.inp.streams[i] for i in copied]
        try:
            for packet in self.inp.demux(streams):
                if self.stop.is_set():
                    raise _Stopped
                index = packet.stream.index
                if index == vindex:
                    if state["done"]:
                        pass
                    else:
                        try:
                            frames = self.vstream.decode(packet)
                        except (av.FFmpegError, ValueError) as e:
                            bad += 1
                            first_bad = first_bad or (state["sent"], reason(e))
                            if bad > _MAX_BAD_PACKETS:
                                stopped = reason(e)
                                break
                            continue
                        bad = 0
                        for frame in frames:
                            emit(frame)
                elif packet.size and index in copied:
                    self._pass_packet(packet, copied[index], ended)
                if state["done"] and (len(ended) == len(copied) or _seconds(packet) > (self.t_end or 0) + 10):
                    break  # every stream is past the cut (or a sparse one, subtitles, never gets there)
        except (av.FFmpegError, ValueError) as e:
            stopped = reason(e)
        if stopped is not None:  # decode what the decoder still holds
            try:
                for frame in self.vstream.decode(None):
                    emit(frame)
            except (av.FFmpegError, ValueError):
                pass
        self._report_end(state["sent"], state["last_end"], stopped, first_bad)
        self.decoded.put(_END)

    def _pass_packet(self, packet: av.Packet, target: Any, ended: set[int]) -> None:
        """Hand a copied stream's packet on, unless trimming cuts it; shift its times as the video's."""
        t = packet.pts if packet.pts is not None else packet.dts
        if self.trimming and t is not None:
            secs = float(t * packet.time_base)
            if secs < self.t_start - 1e-6:
                return
            if self.t_end is not None and secs >= self.t_end - 1e-6:
                ended.add(packet.stream.index)
                return
            shift = round(self.t_start / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        packet.stream = target
        self.decoded.put(_PACKET, packet, 0)

    def _report_end(self, sent: int, last_end: int | None, stopped: str | None,
                    first_bad: tuple[int, str] | None) -> None:
        """Warn about undecodable packets and a video that ends before its header says; fail when no
        frame at all came out."""
        info = self.info
        if sent == 0:
            if self.trimming:
                raise VideoReadError(f"{self.src}: no video frames from {self.t_start - info.start_time:.3f} s "
                                     f"on (the video lasts {info.duration or 0:.3f} s)")
            raise VideoReadError(f"{self.src}: corrupt video, no frame decodes ({stopped or 'no data'})")
        if first_bad is not None:
            self.decoded.put(_WARN, f"{self.src}: video packets that do not decode were skipped (the first "
                                    f"after frame {first_bad[0]}: {first_bad[1]})")
        end_s = float((last_end or 0) * info.time_base)
        expected = info.start_time + info.duration if info.duration is not None else None
        if self.t_end is not None and expected is not None:
            expected = min(expected, self.t_end)
        slack = max(2.5 / info.fps, 0.1) if info.fps else 0.1
        if stopped is not None or (expected is not None and expected - end_s > slack):
            self.truncated = True
            why = f": {stopped}" if stopped else f", before the {expected - info.start_time:.2f} s the file announces"
            self.decoded.put(_WARN, f"{self.src}: truncated or corrupt: decoding stopped after frame {sent} "
                                    f"({end_s - info.start_time:.2f} s){why}; the output holds the {sent} "
                                    "frames decoded")

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
                if kind == _END:
                    break
                if kind == _PACKET:
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
