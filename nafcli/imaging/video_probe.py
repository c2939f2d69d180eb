"""Recognising and describing videos, and reading the times that ``--start``/``--duration`` take.

Kept apart from :mod:`nafcli.imaging.video` (the transcoding pipeline) so that deciding whether a path
is a video, and what is in it, stays cheap to read and to test. Like the rest of ``nafcli.imaging``
this module sits below the inference layer: it imports only PyAV, the standard library and
:mod:`nafcli.errors`, and it never prints (PyAV keeps FFmpeg's own log quiet by default).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream

from ..errors import UnsupportedVideoError, UsageError, VideoReadError

#: how many leading bytes the signature checks read (an MPEG-TS needs three 188-byte packets, M2TS 192)
_HEAD = 600

#: ISO-BMFF major brands of still or animated *images* (HEIF, AVIF, Canon CR3) and of audio-only MP4s:
#: they start with an ``ftyp`` box like a video does, but are not videos to nafcli
_NOT_VIDEO_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif",
                     b"avis", b"crx ", b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}

#: FFmpeg demuxers that read images (single or animated): nafcli's image path handles those
_IMAGE_DEMUXERS = {"image2", "gif", "apng", "ico", "tty", "alias_pix", "brender_pix", "jpegxl_anim",
                   "webp", "pgx", "lavfi"}

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM",
                b"8BPS", b"\x00\x00\x01\x00", b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")

#: FFmpeg's names for the AVCOL_* codes, so that JSON output says "bt709", not 1
COLOR_RANGES = {0: "unknown", 1: "tv", 2: "pc"}
COLOR_PRIMARIES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                   8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
COLOR_TRCS = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
              8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e",
              13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428",
              18: "arib-std-b67"}
COLOR_SPACES = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
                8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
                13: "chroma-derived-c", 14: "ictcp"}


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a container, as :func:`probe` reports it."""

    index: int
    type: str  # "video", "audio", "subtitle", "data", "attachment"
    codec: str | None
    language: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video from its header and its first decoded frame.

    ``frames`` is the container's own count where it keeps one (MP4, AVI: ``frames_exact``), else an
    estimate from duration x frame rate (Matroska, MPEG-TS), else ``None``. Colour tags are FFmpeg's
    AVCOL_* codes (names in :meth:`as_dict`). ``rotation`` is counter-clockwise degrees, as
    :attr:`av.VideoFrame.rotation` reads it; ``display_matrix`` is the raw 3x3 matrix when the file has
    one (the old ``rotate`` tag gives a rotation but no matrix).
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    frame_rate: Fraction | None
    time_base: Fraction
    duration: float | None
    start_time: float
    frames: int | None
    frames_exact: bool
    rotation: int
    display_matrix: tuple[int, ...] | None
    color_range: int
    color_primaries: int
    color_trc: int
    colorspace: int
    sample_aspect_ratio: Fraction | None
    video_index: int
    streams: tuple[StreamInfo, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float | None:
        return float(self.frame_rate) if self.frame_rate else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: fractions as strings ("30000/1001") beside floats, colour codes as names."""
        return {
            "path": self.path, "container": self.container, "codec": self.codec,
            "width": self.width, "height": self.height, "pix_fmt": self.pix_fmt, "bit_depth": self.bit_depth,
            "fps": self.fps, "frame_rate": _frac(self.frame_rate), "time_base": _frac(self.time_base),
            "duration": self.duration, "start_time": self.start_time,
            "frames": self.frames, "frames_exact": self.frames_exact,
            "rotation": self.rotation, "display_matrix": list(self.display_matrix or []) or None,
            "color_range": COLOR_RANGES.get(self.color_range, str(self.color_range)),
            "color_primaries": COLOR_PRIMARIES.get(self.color_primaries, str(self.color_primaries)),
            "color_trc": COLOR_TRCS.get(self.color_trc, str(self.color_trc)),
            "colorspace": COLOR_SPACES.get(self.colorspace, str(self.colorspace)),
            "sample_aspect_ratio": _frac(self.sample_aspect_ratio), "video_index": self.video_index,
            "streams": [s.__dict__.copy() for s in self.streams], "metadata": dict(self.metadata),
        }


def _frac(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


# --- recognising -------------------------------------------------------------------------------------


def _sniff(head: bytes) -> bool | None:
    """True for a video container's signature, False for an image's or an empty file, None when only
    FFmpeg can tell (Ogg holds audio or video, an elementary stream has no real signature)."""
    if not head:
        return False
    if head[4:8] == b"ftyp":
        return head[8:12] not in _NOT_VIDEO_BRANDS
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):  # QuickTime without ftyp
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return True
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    if head.startswith(b"RIFF"):  # WAVE, WEBP, ...
        return False
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS sync bytes
        return True
    if len(head) > 388 and head[4] == head[196] == head[388] == 0x47:  # M2TS (Blu-ray, AVCHD)
        return True
    if head.startswith((b"\x00\x00\x01\xba", b"FLV\x01", b"DKIF", b"\x06\x0e\x2b\x34",
                        bytes.fromhex("3026b2758e66cf11"), b".RMF")):  # MPEG-PS, FLV, IVF, MXF, ASF, RM
        return True
    if head.startswith(_IMAGE_MAGIC):
        return False
    return None


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a video, judged by its content, not its name.

    Known container signatures (MP4/MOV ``ftyp``, Matroska/WebM EBML, AVI ``RIFF``, MPEG-TS/M2TS
    sync bytes, MPEG-PS, FLV, IVF, MXF, ASF) answer at once; images (PNG, JPEG, GIF, TIFF, HEIF/AVIF
    brands, ...) and audio-only MP4 brands are not videos. Anything else is asked of FFmpeg: a video
    stream that is not an attached picture (cover art) and does not come from an image demuxer. A
    container signature is trusted without opening the file, so an audio-only Matroska file counts as
    a video here and :func:`probe` then reports that it has no video stream. Unreadable paths are not
    videos.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return False
    verdict = _sniff(head)
    if verdict is not None:
        return verdict
    try:
        with av.open(os.fspath(path), "r", metadata_errors="replace") as container:
            if container.format.name in _IMAGE_DEMUXERS or container.format.name.endswith("_pipe"):
                return False
            return bool(_video_streams(container))
    except (av.FFmpegError, OSError, ValueError):
        return False


# --- opening and probing -------------------------------------------------------------------------


def _video_streams(container: InputContainer) -> list[VideoStream]:
    return [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]


def reason(err: BaseException) -> str:
    """FFmpeg's reason in a few words, on one line (its ``str`` repeats the path; PyAV keeps FFmpeg's
    log quiet, so this is often all there is)."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def open_input(path: str | os.PathLike[str]) -> tuple[InputContainer, VideoStream]:
    """Open ``path`` for decoding and pick its main video stream, or raise a one-line error.

    The stream is the first video stream flagged default, else the first one; cover art does not count.
    The caller closes the container.
    """
    name = os.fspath(path)
    p = Path(name)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise VideoReadError(f"{name}: no such file") from None
    except OSError as e:
        raise VideoReadError(f"{name}: cannot read ({e.strerror or e})") from None
    if p.is_dir():
        raise VideoReadError(f"{name}: is a folder, not a video")
    if size == 0:
        raise VideoReadError(f"{name}: empty file (0 bytes), not a video")
    try:
        with open(name, "rb") as f:
            head = f.read(_HEAD)
    except OSError as e:
        raise VideoReadError(f"{name}: cannot read ({e.strerror or e})") from None
    looks = _sniff(head)
    if looks is False:
        raise VideoReadError(f"{name}: not a video (an image or another kind of file)")
    try:
        container = av.open(name, "r", metadata_errors="replace")
    except (av.FFmpegError, OSError, ValueError) as e:
        what = "corrupt or truncated video" if looks else "not a video, or corrupt"
        raise VideoReadError(f"{name}: {what} ({reason(e)})") from None
    try:
        fmt = container.format.name
        if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
            raise VideoReadError(f"{name}: an image ({fmt}), not a video")
        streams = _video_streams(container)
        if not streams:
            others = ", ".join(f"{s.type} {_codec_name(s) or '?'}" for s in container.streams) or "no streams"
            raise VideoReadError(f"{name}: no video stream ({others})")
        stream = next((s for s in streams if s.disposition & Disposition.default), streams[0])
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise UnsupportedVideoError(f"{name}: the FFmpeg in PyAV cannot decode this video's codec "
                                        f"(stream #{stream.index})")
        return container, stream
    except BaseException:
        container.close()
        raise


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix: nine int32 in native byte order (libavutil/display.h)."""
    try:
        side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    except ValueError:  # PyAV 18 cannot list side data types newer than itself
        return None
    raw = bytes(side) if side is not None else b""
    if len(raw) != 36:
        return None
    return tuple(int.from_bytes(raw[i:i + 4], sys.byteorder, signed=True) for i in range(0, 36, 4))


def first_frame(container: InputContainer, stream: VideoStream, name: str) -> av.VideoFrame:
    """Decode the stream's first frame: it carries what the header may not (display matrix, colour
    tags set in the bitstream) and proves the video decodes at all."""
    try:
        for frame in container.decode(stream):
            return frame
    except (av.FFmpegError, ValueError) as e:
        raise VideoReadError(f"{name}: corrupt video, no frame decodes ({reason(e)})") from None
    raise VideoReadError(f"{name}: corrupt video, no frame decodes")


def _codec_name(stream: Any) -> str | None:
    """The codec's own name ("av1", "mp3"), not the decoder's ("libdav1d", "mp3float")."""
    cc = stream.codec_context
    return cc.codec.canonical_name if cc is not None and cc.codec is not None else None


def bit_depth(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (its deepest component: 10 for yuv420p10le, 8 for nv12)."""
    return max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the video at ``path`` (header plus its first decoded frame); raise a one-line
    :class:`~nafcli.errors.VideoError` when it is not a video that can be decoded."""
    name = os.fspath(path)
    container, stream = open_input(name)
    with container:
        frame = first_frame(container, stream, name)
        return describe(container, stream, frame, name)


def describe(container: InputContainer, stream: VideoStream, frame: av.VideoFrame, name: str) -> VideoInfo:
    """The :class:`VideoInfo` of an open input, given its first decoded frame."""
    cc = stream.codec_context
    tb = stream.time_base or Fraction(1, 90000)
    rate = stream.average_rate or stream.guessed_rate or None
    duration: float | None = None
    if stream.duration is not None:
        duration = float(stream.duration * tb)
    elif _clock(stream.metadata.get("DURATION")) is not None:  # Matroska keeps it as a tag
        duration = _clock(stream.metadata.get("DURATION"))
    elif container.duration is not None:
        duration = container.duration / av.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    frames: int | None = stream.frames or None
    exact = frames is not None
    if frames is None and duration and rate:
        frames = round(duration * rate)
    matrix = _display_matrix(frame)
    rotation = frame.rotation  # read straight from the frame, whichever side data PyAV can name
    tag = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), "")  # Matroska: ROTATE
    if not matrix and not rotation and tag.strip().lstrip("-").isdigit():
        rotation = -int(tag) % 360  # the old tag turns clockwise, the matrix's angle counter-clockwise
        rotation = rotation - 360 if rotation > 180 else rotation
    pix_fmt = frame.format.name
    streams = tuple(
        StreamInfo(index=s.index, type=s.type, codec=_codec_name(s),
                   language=s.metadata.get("language"), title=s.metadata.get("title"))
        for s in container.streams
    )
    return VideoInfo(
        path=name, container=container.format.name, codec=_codec_name(stream), width=frame.width,
        height=frame.height,
        pix_fmt=pix_fmt, bit_depth=bit_depth(pix_fmt), frame_rate=Fraction(rate) if rate else None,
        time_base=Fraction(tb), duration=duration, start_time=start, frames=frames, frames_exact=exact,
        rotation=rotation, display_matrix=matrix,
        color_range=int(frame.color_range or cc.color_range), color_primaries=int(frame.color_primaries or
                                                                                   cc.color_primaries),
        color_trc=int(frame.color_trc or cc.color_trc), colorspace=int(frame.colorspace or cc.colorspace),
        sample_aspect_ratio=stream.sample_aspect_ratio or None, video_index=stream.index,
        streams=streams, metadata=dict(container.metadata),
    )


def _clock(text: str | None) -> float | None:
    """Seconds from a Matroska ``DURATION`` tag (``00:00:10.040000000``), None if absent or odd."""
    parts = (text or "").split(":")
    try:
        return float(int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])) if len(parts) == 3 else None
    except ValueError:
        return None


# --- times -----------------------------------------------------------------------------------------

_TIME = re.compile(r"(?:(?:(?P<h>\d+):)?(?P<m>\d+):)?(?P<s>\d+(?:\.\d*)?|\.\d+)")


def parse_time(text: str) -> float:
    """Seconds from ``"12.5"``, ``"1:02"`` (M:SS) or ``"00:01:02.500"`` (H:MM:SS.mmm).

    Minutes and seconds after a colon must be below 60; negative times are refused. Raises
    :class:`~nafcli.errors.UsageError` (exit code 2) with the accepted forms.
    """
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise UsageError(f"invalid time {text!r}: use seconds (12.5), M:SS (1:02) or H:MM:SS.mmm (0:01:02.5)")
    hours = int(match["h"]) if match["h"] else 0
    minutes = int(match["m"]) if match["m"] else 0
    seconds = float(match["s"])
    if (match["m"] is not None and seconds >= 60) or (match["h"] is not None and minutes >= 60):
        raise UsageError(f"invalid time {text!r}: minutes and seconds after a colon must be below 60")
    return hours * 3600 + minutes * 60 + seconds
