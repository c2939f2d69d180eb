"""The output side of :mod:`nafcli.imaging.video`: which encoder, pixel format and settings, and an
output container that carries over everything but the pixels (other streams, metadata, rotation, colour
tags, timing).

Split from the pipeline so that these decisions can be read (and documented in docs/video.md) in one
place. Imports only numpy, PyAV, the standard library and :mod:`nafcli.errors`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
from av.container import InputContainer, OutputContainer
from av.stream import Stream
from av.video.reformatter import Interpolation
from av.video.stream import VideoStream

from ..errors import UnsupportedVideoError, VideoWriteError
from .video_probe import VideoInfo, bit_depth, reason

#: the encoder for a decoded codec, where FFmpeg's own default encoder for that codec is not the one to
#: use or does not exist under the codec's name; any other codec goes to FFmpeg's default encoder for it
ENCODER_FOR = {"h264": "libx264", "hevc": "libx265", "vp8": "libvpx", "vp9": "libvpx-vp9",
               "av1": "libsvtav1", "prores": "prores_ks"}

#: the encoder when the input's codec has none (or the container cannot hold it)
FALLBACK = "libx264"

#: "visually lossless" settings per encoder (docs/video.md explains the choice); ``crf`` replaces the
#: "crf" entry. Lossless encoders (ffv1, utvideo, huffyuv, png, ...) need nothing.
QUALITY: dict[str, dict[str, str]] = {
    "libx264": {"crf": "17", "preset": "medium"},
    "libx265": {"crf": "18", "preset": "medium", "x265-params": "log-level=none"},
    "libvpx-vp9": {"crf": "18", "b": "0", "row-mt": "1"},
    "libvpx": {"crf": "6", "b": "40M"},
    "libsvtav1": {"crf": "20", "preset": "8"},
    # MPEG-era encoders have no CRF: a fixed quantiser of 2 (FF_QP2LAMBDA x 2) is their finest usual step
    **{name: {"flags": "+qscale", "global_quality": "236"}
       for name in ("mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "msmpeg4", "msmpeg4v2", "h263", "flv")},
}

#: swscale flags for both conversions, YUV -> RGB before ``restore`` and RGB -> YUV after: bicubic
#: chroma, full chroma interpolation and accurate rounding. With swscale's defaults an identity
#: ``restore`` moved luma by 1.1 levels on average (a rounding bias); with these the round trip
#: through RGB returns the same 4:2:0 planes to within 0.002 levels, for ~3 ms a 720p frame.
SWS_FLAGS = int(Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT)

#: stream metadata that describes the old encoding, or that the muxer writes itself
_STALE_TAGS = {"encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "rotate",
               "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc"}
#: container metadata the muxer writes itself
_STALE_CONTAINER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands"}


#: what muxers hold beyond the codecs FFmpeg can confirm for them: MPEG-TS, MPEG-PS, Ogg and MXF
#: confirm only their default codecs and let any other through unchecked, writing files that nothing
#: reads back, so for them nafcli trusts this list (canonical codec names) instead
_ALSO_HOLDS: dict[str, set[str]] = {
    "mpegts": {"h264", "hevc", "vvc", "mpeg1video", "mpeg2video", "mpeg4", "av1", "vc1", "dirac", "aac",
               "aac_latm", "mp2", "mp3", "ac3", "eac3", "dts", "truehd", "opus", "pcm_bluray", "s302m",
               "dvb_subtitle", "dvb_teletext", "hdmv_pgs_subtitle", "smpte_klv", "timed_id3"},
    "mpeg": {"mpeg1video", "mpeg2video", "h264", "mp2", "mp3", "ac3", "dts", "pcm_dvd", "dvd_subtitle"},
    "vob": {"mpeg2video", "mpeg1video", "mp2", "ac3", "dts", "pcm_dvd", "dvd_subtitle"},
    "dvd": {"mpeg2video", "mpeg1video", "mp2", "ac3", "dts", "pcm_dvd", "dvd_subtitle"},
    "svcd": {"mpeg2video", "mp2", "dvd_subtitle"},
    "vcd": {"mpeg1video", "mp2"},
    "ogg": {"theora", "vp8", "vorbis", "opus", "flac", "speex"},
    "ogv": {"theora", "vp8", "vorbis", "opus", "flac", "speex"},
    "mxf": {"mpeg2video", "h264", "dnxhd", "dvvideo", "jpeg2000", "prores", "ffv1", "pcm_s16le",
            "pcm_s24le"},
}


def _holder(out: OutputContainer) -> Callable[[str], bool]:
    """Whether ``out``'s muxer holds a codec (canonical name): what FFmpeg confirms, else
    :data:`_ALSO_HOLDS`."""
    confirmed = out.supported_codecs
    extra = _ALSO_HOLDS.get(out.format.name, set())
    return lambda name: name in confirmed or name in extra


@dataclass
class EncoderPlan:
    """How the video stream is encoded. ``auto``: chosen by nafcli (it may fall back to H.264), not asked
    for by the caller."""

    encoder: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    auto: bool = True


@dataclass
class Output:
    """An open output container ready for its first packet, and where each copied stream goes."""

    container: OutputContainer
    video: VideoStream
    plan: EncoderPlan
    stream_map: dict[int, Stream]
    tags: tuple[int, int, int, int]  # colour range, primaries, trc, colorspace written


def _find_encoder(name: str) -> av.Codec | None:
    try:
        codec = av.Codec(name, "w")
    except (ValueError, av.FFmpegError):
        return None
    return codec if codec.type == "video" else None


def has_encoder(name: str) -> bool:
    """Whether the bundled FFmpeg has a video encoder called ``name`` (what ``codec=`` accepts)."""
    return _find_encoder(name) is not None


def _pix_fmt(codec: av.Codec, want: str) -> str:
    """``want`` if the encoder takes it, else FFmpeg's least lossy choice among those it takes."""
    formats = [f.name for f in codec.video_formats or []]
    if not formats or want in formats:
        return want
    best, _loss = av.codec.codec.find_best_pix_fmt_of_list(formats, want)
    return best.name if best is not None else formats[0]


def candidates(info: VideoInfo, codec: str | None, default: str | None, dst: str) -> list[str]:
    """Encoders to try, best first: the one asked for alone; else the input codec's encoder, then
    H.264, then the container's own default (WebM holds neither FFV1 nor H.264, but VP9)."""
    if codec is not None:
        chosen = _find_encoder(codec)
        if chosen is None:
            raise UnsupportedVideoError(f"{dst}: no video encoder '{codec}' in the FFmpeg that PyAV bundles")
        return [chosen.name]
    names: list[str] = []
    for name in (ENCODER_FOR.get(info.codec, info.codec), FALLBACK, default):
        found = _find_encoder(name) if name and name != "none" else None
        if found is not None and found.name not in names:
            names.append(found.name)
    return names


def plan_encoder(name: str, info: VideoInfo, crf: int | None, auto: bool, dst: str,
                 warn: Callable[[str], None]) -> EncoderPlan:
    """Pixel format and options for encoder ``name``: the input's pixel format where it takes it, the
    quality defaults of :data:`QUALITY`, ``crf`` where the encoder has one."""
    encoder = av.Codec(name, "w")
    pix_fmt = _pix_fmt(encoder, info.pix_fmt)
    if bit_depth(pix_fmt) < info.bit_depth:
        warn(f"{dst}: {name} cannot keep {info.bit_depth}-bit video ({info.pix_fmt}); writing {pix_fmt}")
    options = dict(QUALITY.get(name, {}))
    if crf is not None:
        if "crf" in options:
            options["crf"] = str(crf)
        else:
            warn(f"{dst}: {name} has no CRF setting; crf {crf} ignored")
    return EncoderPlan(encoder=name, pix_fmt=pix_fmt, options=options, auto=auto)


def _colour_tags(info: VideoInfo, pix_fmt: str) -> tuple[int, int, int, int]:
    """The colour range/primaries/transfer/matrix to write: the input's, except where the pixel format
    family changes (an RGB input encoded as YUV gets the BT.709 matrix at TV range, the one used to
    convert it; YUV written as RGB gets the RGB matrix)."""
    rng, space = info.color_range, info.colorspace
    rgb_in = av.VideoFormat(info.pix_fmt).is_rgb
    rgb_out = av.VideoFormat(pix_fmt).is_rgb
    if rgb_in and not rgb_out:
        rng, space = 1, 1
    elif rgb_out and not rgb_in:
        rng, space = 0, 0
    return rng, info.color_primaries, info.color_trc, space


def _clean(tags: dict[str, str], stale: set[str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.lower() not in stale}


def open_output(tmp: str, dst: str, inp: InputContainer, vstream: VideoStream, info: VideoInfo,
                codec: str | None, crf: int | None, warn: Callable[[str], None],
                window: tuple[float, float | None] | None = None) -> Output:
    """Create the output at ``tmp`` (its name ends in the real extension, which picks the muxer), with
    the video encoder open and the header written, so that every configuration error surfaces here, on
    the caller's thread, before any thread starts. ``window``: the absolute (start, end) seconds kept
    when trimming, which chapters are cut and shifted to.

    Fallbacks when the encoder was not asked for, with a warning: the next of :func:`candidates` when
    the container cannot hold an encoder's codec or the encoder refuses to open (some need sizes or
    time bases the video lacks). When the muxer refuses the header because of copied streams, it is
    written again without subtitle/data/attachment streams, then without any copied stream.
    """
    names: list[str] | None = None
    tried: list[str] = []  # why each earlier candidate was passed over
    index = 0
    drop = 0  # 0: copy every stream, 1: audio only, 2: none
    while True:
        notes: list[str] = []
        try:
            out = av.open(tmp, "w", metadata_errors="replace")
        except (ValueError, av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"{dst}: cannot write this kind of file ({reason(e)}); use .mp4, .mkv, "
                                  ".mov, .webm or .avi") from None
        try:
            if names is None:
                names = candidates(info, codec, out.default_video_codec, dst)
            if index >= len(names):
                raise UnsupportedVideoError(f"{dst}: no video encoder here that a {out.format.name} file can "
                                            f"hold ({'; '.join(tried) or 'none found'})")
            holds = _holder(out)
            plan = plan_encoder(names[index], info, crf, codec is None, dst, notes.append)
            try:
                if not holds(av.Codec(plan.encoder, "w").canonical_name):
                    raise ValueError("format does not support the codec")
                video, tags = _add_video(out, vstream, info, plan)
                video.codec_context.open()
            except (av.FFmpegError, ValueError) as e:
                why = (f"the {out.format.name} container cannot hold {plan.encoder} video"
                       if "not support" in str(e) else f"{plan.encoder} cannot encode this video "
                                                       f"({reason(e)})")
                if codec is not None:
                    raise UnsupportedVideoError(f"{dst}: {why}") from None
                tried.append(why)
                index += 1
                out.close()
                continue
            stream_map = _copy_streams(out, inp, vstream, dst, notes.append, drop, holds)
            out.metadata.update(_clean(dict(inp.metadata), _STALE_CONTAINER_TAGS))
            chapters = _chapters(inp.chapters(), window)
            if chapters:
                out.set_chapters(chapters)
            try:
                out.start_encoding()
            except (av.FFmpegError, ValueError, OSError) as e:
                refusal = reason(e)
                kinds = {s.type for s in stream_map.values()}
                if drop == 0 and kinds - {"audio"}:
                    drop = 1
                elif drop < 2 and kinds:
                    drop = 2
                else:
                    raise VideoWriteError(f"{dst}: cannot write ({refusal})") from None
                tried.append(f"the {out.format.name} muxer refused the copied streams ({refusal})")
                out.close()
                continue
        except BaseException:
            out.close()
            raise
        if index:
            warn(f"{dst}: {tried[0]}; encoding {plan.encoder} instead")
        if drop:
            warn(f"{dst}: {tried[-1]}; written without {'subtitle/data/attachment' if drop == 1 else 'the other'} "
                 "streams (a .mkv file holds them all)")
        for note in notes:
            warn(note)
        return Output(container=out, video=video, plan=plan, stream_map=stream_map, tags=tags)


def _chapters(chapters: list[dict], window: tuple[float, float | None] | None) -> list[dict]:
    """The input's chapters; when trimming, those that overlap the kept span, cut to it and shifted
    as the streams are (each keeps its own time base)."""
    if window is None:
        return chapters
    start, end = window
    kept = []
    for ch in chapters:
        tb = ch["time_base"]
        a, b = float(ch["start"] * tb), float(ch["end"] * tb)
        if b <= start or (end is not None and a >= end):
            continue
        a, b = max(a, start) - start, (min(b, end) if end is not None else b) - start
        kept.append({**ch, "start": round(a / tb), "end": round(b / tb)})
    return kept


def _add_video(out: OutputContainer, vstream: VideoStream, info: VideoInfo,
               plan: EncoderPlan) -> tuple[VideoStream, tuple[int, int, int, int]]:
    rate = info.frame_rate or Fraction(25)
    if plan.encoder == "libsvtav1":
        # SVT-AV1 prints its banner and notes straight to stderr, past FFmpeg's log; SVT_LOG=1 keeps
        # it to errors (read when the encoder starts; a value the user set is left alone)
        os.environ.setdefault("SVT_LOG", "1")
    video = out.add_stream(plan.encoder, rate=rate, options=dict(plan.options))
    cc = video.codec_context
    cc.width, cc.height, cc.pix_fmt = info.width, info.height, plan.pix_fmt
    cc.time_base = info.time_base
    video.time_base = info.time_base
    tags = _colour_tags(info, plan.pix_fmt)
    cc.color_range, cc.color_primaries, cc.color_trc, cc.colorspace = tags
    if info.sample_aspect_ratio:
        cc.sample_aspect_ratio = info.sample_aspect_ratio
    cc.thread_count = 0  # as many as the encoder likes
    if info.display_matrix:
        video.set_display_matrix(info.display_matrix)
    elif info.rotation:
        video.set_display_rotation(info.rotation)
    video.metadata.update(_clean(dict(vstream.metadata), _STALE_TAGS))
    video.disposition = vstream.disposition
    return video, tags


def _copy_streams(out: OutputContainer, inp: InputContainer, vstream: VideoStream, dst: str,
                  warn: Callable[[str], None], drop: int, holds: Callable[[str], bool]) -> dict[int, Stream]:
    """Add an output stream for every input stream but the restored one; packets are copied as they are.
    Streams the output container cannot hold are left out with a warning (into the input's own kind of
    container, every stream is trusted: that muxer family wrote it)."""
    mapping: dict[int, Stream] = {}
    same_kind = out.format.name in inp.format.name.split(",")
    for s in inp.streams:
        if s.index == vstream.index:
            continue
        codec = s.codec_context.codec.canonical_name if s.codec_context is not None else None
        label = f"stream #{s.index} ({s.type} {codec or 'data'})"
        if drop >= 2 or (drop == 1 and s.type != "audio"):
            continue  # open_output says why
        if not same_kind and s.type != "attachment" and not (codec and holds(codec)):
            warn(f"{dst}: {label} left out (the {out.format.name} container cannot hold it)")
            continue
        if s.type == "attachment":
            try:
                out.add_attachment(s.metadata.get("filename", f"attachment{s.index}"),
                                   s.metadata.get("mimetype", "application/octet-stream"), s.data)
            except (ValueError, av.FFmpegError) as e:
                warn(f"{dst}: {label} left out ({reason(e)})")
            continue
        if s.type not in ("audio", "video", "subtitle", "data"):
            warn(f"{dst}: {label} left out (cannot copy {s.type} streams)")
            continue
        try:
            copy = out.add_stream_from_template(s, opaque=True)
        except (ValueError, av.FFmpegError) as e:
            warn(f"{dst}: {label} left out ({reason(e)})")
            continue
        if copy.codec_context is not None:
            copy.metadata.update(_clean(dict(s.metadata), _STALE_TAGS))
        copy.disposition = s.disposition
        mapping[s.index] = copy
    return mapping


def to_rgb(frame: av.VideoFrame, rgb_format: str, width: int, height: int) -> av.VideoFrame:
    """The RGB frame that carries a decoded frame to ``restore`` and back: converted with the frame's
    own matrix, range and chroma siting, and keeping its properties (reformat copies them), so that
    :func:`to_video_frame` converts back with the same ones. Always a new buffer, never the
    decoder's (which may still be a reference frame)."""
    rgb = frame.reformat(width=width, height=height, format=rgb_format, interpolation=SWS_FLAGS)
    if rgb is frame:  # already RGB at that size: reformat hands back the decoder's frame itself
        rgb = av.VideoFrame.from_ndarray(frame.to_ndarray().copy(), format=rgb_format)
    return rgb


def to_video_frame(carrier: av.VideoFrame, output: Output, pts: int, duration: int,
                   time_base: Fraction) -> av.VideoFrame:
    """An encoder-ready frame from a carrier (see :func:`to_rgb`) holding restored pixels: converted to
    the output pixel format with the input's matrix, range and chroma siting, tagged, timed."""
    rng, primaries, trc, space = output.tags
    frame = carrier
    frame.color_range, frame.colorspace = rng, space
    if frame.format.name != output.plan.pix_fmt:
        frame = frame.reformat(format=output.plan.pix_fmt, interpolation=SWS_FLAGS)
    frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace = rng, primaries, trc, space
    frame.pts = pts
    frame.time_base = time_base
    if duration > 0:
        frame.duration = duration
    return frame
