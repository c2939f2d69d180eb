"""The output side of :mod:`nafcli.imaging.video`: which encoder, pixel format and settings, and an
output container that carries over everything but the pixels (other streams, metadata, rotation, colour
tags, timing).

Split from the pipeline so that these decisions can be read (and documented in docs/video.md) in one
place. Imports only numpy, PyAV, the standard library and :mod:`nafcli.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from av.container import InputContainer, OutputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from nafcli.errors import UnsupportedVideoError, VideoWriteError
from nafcli.imaging.video_probe import VideoInfo, bit_depth

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

#: stream metadata that describes the old encoding, or that the muxer writes itself
_STALE_TAGS = {"encoder", "duration", "bps", "number_of_frames", "number_of_bytes", "rotate",
               "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc"}
#: container metadata the muxer writes itself
_STALE_CONTAINER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands"}


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


def _holds(container: OutputContainer, codec: av.Codec) -> bool:
    names = container.supported_codecs
    return codec.name in names or codec.canonical_name in names


def _pix_fmt(codec: av.Codec, want: str) -> str:
    """``want`` if the encoder takes it, else FFmpeg's least lossy choice among those it takes."""
    formats = [f.name for f in codec.video_formats or []]
    if not formats or want in formats:
        return want
    best, _loss = av.codec.codec.find_best_pix_fmt_of_list(formats, want)
    return best.name if best is not None else formats[0]


def plan_encoder(info: VideoInfo, container: OutputContainer, codec: str | None, crf: int | None,
                 dst: str, warn: Callable[[str], None], *, force_fallback: bool = False) -> EncoderPlan:
    """Pick the encoder, pixel format and options for ``info``'s video in ``container``."""
    auto = codec is None or force_fallback
    if codec is not None and not force_fallback:
        chosen = _find_encoder(codec)
        if chosen is None:
            raise UnsupportedVideoError(f"{dst}: no video encoder '{codec}' in the FFmpeg that PyAV bundles")
        if not _holds(container, chosen):
            raise UnsupportedVideoError(f"{dst}: a {container.format.name} file cannot hold {chosen.name} video; "
                                        "choose another codec or extension")
    else:
        chosen = None if force_fallback else _find_encoder(ENCODER_FOR.get(info.codec, info.codec))
        if chosen is not None and not _holds(container, chosen):
            warn(f"{dst}: a {container.format.name} file cannot hold {chosen.name} video; encoding "
                 f"{FALLBACK} instead")
            chosen = None
        elif chosen is None and not force_fallback:
            warn(f"{dst}: no encoder for {info.codec} video in the FFmpeg that PyAV bundles; encoding "
                 f"{FALLBACK} instead")
        if chosen is None:
            chosen = _find_encoder(FALLBACK)
            if chosen is None or not _holds(container, chosen):
                default = container.default_video_codec
                chosen = _find_encoder(default) if default and default != "none" else None
            if chosen is None:
                raise UnsupportedVideoError(f"{dst}: no video encoder that a {container.format.name} file "
                                            "can hold")
    pix_fmt = _pix_fmt(chosen, info.pix_fmt)
    if bit_depth(pix_fmt) < info.bit_depth:
        warn(f"{dst}: {chosen.name} here cannot keep {info.bit_depth}-bit video ({info.pix_fmt}); "
             f"writing {pix_fmt}")
    options = dict(QUALITY.get(chosen.name, {}))
    if crf is not None:
        if "crf" in options:
            options["crf"] = str(crf)
        else:
            warn(f"{dst}: {chosen.name} has no CRF setting; crf {crf} ignored")
    return EncoderPlan(encoder=chosen.name, pix_fmt=pix_fmt, options=options, auto=auto)


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
                codec: str | None, crf: int | None, warn: Callable[[str], None]) -> Output:
    """Create the output at ``tmp`` (its name ends in the real extension, which picks the muxer), with
    the video encoder open and the header written, so that every configuration error surfaces here, on
    the caller's thread, before any thread starts.

    Fallbacks, each with a warning: an encoder chosen by nafcli that refuses to open (some need sizes
    or rates the video lacks) gives way to H.264; a header the muxer refuses because of a copied
    subtitle, data or attachment stream is written again without those.
    """
    notes: list[str] = []
    fallback = False
    drop_extras = False
    while True:
        notes.clear()
        try:
            out = av.open(tmp, "w", metadata_errors="replace")
        except (ValueError, av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"{dst}: cannot write this kind of file ({_reason(e)}); use .mp4, .mkv, "
                                  ".mov, .webm or .avi") from None
        try:
            plan = plan_encoder(info, out, codec, crf, dst, notes.append, force_fallback=fallback)
            video, tags = _add_video(out, vstream, info, plan)
            try:
                video.codec_context.open()
            except (av.FFmpegError, ValueError) as e:
                if plan.auto and not fallback and plan.encoder != FALLBACK:
                    warn(f"{dst}: {plan.encoder} cannot encode this video ({_reason(e)}); encoding "
                         f"{FALLBACK} instead")
                    fallback = True
                    out.close()
                    continue
                raise UnsupportedVideoError(f"{dst}: {plan.encoder} cannot encode this video "
                                            f"({_reason(e)})") from None
            stream_map = _copy_streams(out, inp, vstream, dst, notes.append, drop_extras)
            out.metadata.update(_clean(dict(inp.metadata), _STALE_CONTAINER_TAGS))
            try:
                out.start_encoding()
            except (av.FFmpegError, ValueError, OSError) as e:
                extras = [s for s in stream_map.values() if s.type != "audio"]
                if extras and not drop_extras:
                    warn(f"{dst}: the {out.format.name} muxer refused the copied subtitle/data streams "
                         f"({_reason(e)}); writing video and audio only")
                    drop_extras = True
                    out.close()
                    continue
                raise VideoWriteError(f"{dst}: cannot write ({_reason(e)})") from None
        except BaseException:
            out.close()
            raise
        for note in notes:
            warn(note)
        return Output(container=out, video=video, plan=plan, stream_map=stream_map, tags=tags)


def _reason(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def _add_video(out: OutputContainer, vstream: VideoStream, info: VideoInfo,
               plan: EncoderPlan) -> tuple[VideoStream, tuple[int, int, int, int]]:
    rate = info.frame_rate or Fraction(25)
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
                  warn: Callable[[str], None], drop_extras: bool) -> dict[int, Stream]:
    """Add an output stream for every input stream but the restored one; packets are copied as they are.
    Streams the output container cannot hold are left out with a warning."""
    mapping: dict[int, Stream] = {}
    for s in inp.streams:
        if s.index == vstream.index:
            continue
        label = f"stream #{s.index} ({s.type} {s.codec_context.name if s.codec_context else 'data'})"
        if drop_extras and s.type != "audio":
            warn(f"{dst}: {label} left out")
            continue
        if s.type == "attachment":
            try:
                out.add_attachment(s.metadata.get("filename", f"attachment{s.index}"),
                                   s.metadata.get("mimetype", "application/octet-stream"), s.data)
            except (ValueError, av.FFmpegError) as e:
                warn(f"{dst}: {label} left out ({_reason(e)})")
            continue
        if s.type not in ("audio", "video", "subtitle", "data"):
            warn(f"{dst}: {label} left out (cannot copy {s.type} streams)")
            continue
        try:
            copy = out.add_stream_from_template(s, opaque=True)
        except (ValueError, av.FFmpegError) as e:
            warn(f"{dst}: {label} left out ({_reason(e)})")
            continue
        if copy.codec_context is not None:
            copy.metadata.update(_clean(dict(s.metadata), _STALE_TAGS))
        copy.disposition = s.disposition
        mapping[s.index] = copy
    return mapping


def to_video_frame(pixels: np.ndarray, rgb_format: str, output: Output, pts: int, duration: int,
                   time_base: Fraction) -> av.VideoFrame:
    """An encoder-ready frame from a restored RGB array: converted to the output pixel format with the
    input's matrix and range (the same ones its decoding used), tagged, timed."""
    rng, primaries, trc, space = output.tags
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=rgb_format)
    frame.color_range, frame.colorspace = rng, space
    if frame.format.name != output.plan.pix_fmt:
        frame = frame.reformat(format=output.plan.pix_fmt)
    frame.color_range, frame.color_primaries, frame.color_trc, frame.colorspace = rng, primaries, trc, space
    frame.pts = pts
    frame.time_base = time_base
    if duration > 0:
        frame.duration = duration
    return frame


