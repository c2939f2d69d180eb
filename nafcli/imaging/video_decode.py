"""The input side of :mod:`nafcli.imaging.video`'s pipeline: the bounded queue between stages and the
decode stage (demux, decode to RGB, trimming, copied packets, truncation report).

Split from the pipeline module to keep each part readable; the decode stage runs on its own thread and
talks to the others only through a :class:`Channel`. Imports only numpy, PyAV, the standard library and
:mod:`nafcli.errors`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from av.container import InputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from ..errors import VideoReadError
from .video_encode import to_rgb
from .video_probe import VideoInfo, reason

#: what travels through a channel: a decoded frame, a copied stream's packet, a warning for the caller
#: (kept in order with the frames), the end of the stream
FRAME, PACKET, WARN, END = "frame", "packet", "warn", "end"
#: consecutive undecodable video packets after which the rest of the file is given up as corrupt
MAX_BAD_PACKETS = 50
#: how far (seconds) past the end of a cut demuxing goes on for a stream that has not reached it yet
#: (a sparse subtitle stream may never)
_PAST_END = 10.0


class Stopped(Exception):
    """Raised inside a stage when another stage failed or the caller was interrupted."""


class Channel:
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
                    raise Stopped
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
                    raise Stopped
                self._cond.wait(0.1)
            kind, payload, frames = self._items.popleft()
            self._frames -= frames
            self._cond.notify_all()
            return kind, payload


@dataclass
class Frame:
    """A decoded frame on its way: ``pixels`` is a view of ``carrier``'s RGB buffer, what ``restore``
    gets; the restored pixels are written back into that buffer, so one frame costs one RGB image."""

    pixels: np.ndarray | None
    carrier: av.VideoFrame | None
    pts: int
    duration: int


@dataclass(frozen=True)
class Window:
    """The span kept, in absolute stream seconds; ``trimming`` False keeps everything, timestamps as
    they are. When trimming, every stream's timestamps are shifted back by ``start``."""

    trimming: bool
    start: float
    end: float | None


class Decoder:
    """The decode stage: demux every kept stream in file order, decode the video to RGB frames and pass
    the other streams' packets on untouched (but cut and shifted when trimming), then report how the
    video ended. Runs on its own thread; everything goes to ``channel``."""

    def __init__(self, src: str, inp: InputContainer, vstream: VideoStream, info: VideoInfo, rgb_format: str,
                 step: int, window: Window, stream_map: dict[int, Stream], channel: Channel,
                 stop: threading.Event) -> None:
        self.src, self.inp, self.vstream, self.info = src, inp, vstream, info
        self.rgb_format, self.step, self.window = rgb_format, step, window
        self.stream_map, self.channel, self.stop = stream_map, channel, stop
        self.truncated = False
        self.sent = 0
        self.last: int | None = None  # pts of the last frame sent
        self.last_end: int | None = None
        self.done = False  # the video is past the end of the cut
        self.warned: set[str] = set()
        self.damaged: list[int] = []  # frames the decoder flagged corrupt (it concealed the errors)

    def run(self) -> None:
        bad, first_bad, stopped = 0, None, None
        ended: set[int] = set()
        vindex = self.vstream.index
        streams = [self.vstream] + [self.inp.streams[i] for i in self.stream_map]
        self.vstream.thread_type = "AUTO"  # frame and slice threads, as the decoder likes
        try:
            for packet in self.inp.demux(streams):
                if self.stop.is_set():
                    raise Stopped
                index = packet.stream.index
                if index == vindex and not self.done:
                    try:
                        frames = self.vstream.decode(packet)
                    except (av.FFmpegError, ValueError) as e:
                        bad += 1
                        first_bad = first_bad or (self.sent, reason(e))
                        if bad > MAX_BAD_PACKETS:
                            stopped = reason(e)
                            break
                        continue
                    bad = 0
                    for frame in frames:
                        self._emit(frame)
                elif index != vindex and packet.size:
                    self._pass_packet(packet, ended)
                if self.done and (len(ended) == len(self.stream_map)
                                  or _seconds(packet) > (self.window.end or 0) + _PAST_END):
                    break  # every stream is past the cut
        except (av.FFmpegError, ValueError) as e:  # the demuxer gave up: a truncated or damaged file
            stopped = reason(e)
        if stopped is not None:  # the decoder may still hold frames
            try:
                for frame in self.vstream.decode(None):
                    self._emit(frame)
            except (av.FFmpegError, ValueError):
                pass
        self._report_end(stopped, first_bad)
        self.channel.put(END)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.channel.put(WARN, message)

    def _emit(self, frame: av.VideoFrame) -> None:
        """Send one decoded frame on, unless the cut drops it; keep its timestamp (shifted when
        trimming) and length."""
        info, w = self.info, self.window
        pts = frame.pts if frame.pts is not None else (self.last + self.step if self.last is not None else 0)
        t = float(pts * info.time_base)
        if w.trimming and t < w.start - 1e-6:
            return
        if w.end is not None and t >= w.end - 1e-6:
            self.done = True
            return
        if self.last is not None and pts <= self.last:  # encoders need rising timestamps
            self._warn_once("pts", f"{self.src}: timestamps go backwards at frame {self.sent}; moved forward "
                                   "to keep the order")
            pts = self.last + 1
        if (frame.width, frame.height) != (info.width, info.height):
            self._warn_once("size", f"{self.src}: the frame size changes at frame {self.sent} ({frame.width}x"
                                    f"{frame.height}); scaled to {info.width}x{info.height}")
        if frame.is_corrupt:
            self.damaged.append(self.sent)
        carrier = to_rgb(frame, self.rgb_format, info.width, info.height)
        shift = round(w.start / info.time_base) if w.trimming else 0
        self.channel.put(FRAME, Frame(carrier.to_ndarray(), carrier, pts - shift, frame.duration or 0), 1)
        self.sent += 1
        self.last = pts
        self.last_end = pts + (frame.duration or self.step)

    def _pass_packet(self, packet: av.Packet, ended: set[int]) -> None:
        """Hand a copied stream's packet on, unless the cut drops it (kept: those that start in the
        span); shift its times as the video's."""
        w = self.window
        t = packet.pts if packet.pts is not None else packet.dts
        if w.trimming and t is not None:
            secs = float(t * packet.time_base)
            if secs < w.start - 1e-6:
                return
            if w.end is not None and secs >= w.end - 1e-6:
                ended.add(packet.stream.index)
                return
            shift = round(w.start / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        packet.stream = self.stream_map[packet.stream.index]
        self.channel.put(PACKET, packet, 0)

    def _report_end(self, stopped: str | None, first_bad: tuple[int, str] | None) -> None:
        """Warn about undecodable packets and a video that ends before its header says; fail when no
        frame at all came out."""
        info, w, sent = self.info, self.window, self.sent
        if sent == 0:
            if w.trimming:
                raise VideoReadError(f"{self.src}: no video frames from {w.start - info.start_time:.3f} s on "
                                     f"(the video lasts {info.duration or 0:.3f} s)")
            raise VideoReadError(f"{self.src}: corrupt video, no frame decodes ({stopped or 'no data'})")
        if first_bad is not None:
            self.channel.put(WARN, f"{self.src}: video packets that do not decode were skipped (the first "
                                   f"after frame {first_bad[0]}: {first_bad[1]})")
        if self.damaged:
            self.channel.put(WARN, f"{self.src}: {len(self.damaged)} frame(s) decoded with errors, hidden as "
                                   f"well as the decoder could (the first: frame {self.damaged[0]})")
        end_s = float((self.last_end or 0) * info.time_base)
        expected = info.start_time + info.duration if info.duration is not None else None
        if w.end is not None and expected is not None:
            expected = min(expected, w.end)
        slack = max(2.5 / info.fps, 0.1) if info.fps else 0.1  # a frame or two of rounding is no loss
        if stopped is not None or (expected is not None and expected - end_s > slack):
            self.truncated = True
            why = f": {stopped}" if stopped else f", before the {(expected or 0) - info.start_time:.2f} s " \
                                                 "the file announces"
            self.channel.put(WARN, f"{self.src}: truncated or corrupt: decoding stopped after frame {sent} "
                                   f"({end_s - info.start_time:.2f} s){why}; the output holds the {sent} "
                                   "frames decoded")


def _seconds(packet: av.Packet) -> float:
    t = packet.pts if packet.pts is not None else packet.dts
    return float(t * packet.time_base) if t is not None and packet.time_base else 0.0
