"""The video I/O layer (nafcli.imaging.video): recognition, probing, the streamed transcode and what it
keeps. Every clip is made by the tests with PyAV (tests/helpers/videos.py): a few dozen small frames of a
moving pattern, a sine tone."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.videos import audio_only, decoded, make_clip, packets, pattern

from nafcli.errors import NafcliError, UnsupportedVideoError, UsageError, VideoReadError, VideoWriteError
from nafcli.imaging import video
from nafcli.imaging.video import is_video, parse_time, probe, transcode


def invert(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [np.iinfo(f.dtype).max - f for f in frames]


def blur(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A 3x3 box blur with edge replication, rounded: deterministic and not its own inverse."""
    out = []
    for f in frames:
        p = np.pad(f.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
        acc = sum(p[dy:dy + f.shape[0], dx:dx + f.shape[1]] for dy in range(3) for dx in range(3))
        out.append(np.round(acc / 9).astype(f.dtype))
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def video_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nafcli-video")]


# --- recognising, probing, times ------------------------------------------------------------------------


def test_is_video_by_content_not_name(tmp_path):
    mkv = make_clip(tmp_path / "clip.mkv", frames=3)
    mp4 = make_clip(tmp_path / "clip.mp4", codec="libx264", pix_fmt="yuv420p", frames=3, audio=None)
    (tmp_path / "no_extension").write_bytes(mkv.read_bytes())
    (tmp_path / "movie.jpg").write_bytes(mp4.read_bytes())
    png = tmp_path / "image.mp4"
    av.VideoFrame.from_ndarray(pattern(0, 8, 8), format="rgb24").save(str(png.with_suffix(".png")))
    png.write_bytes(png.with_suffix(".png").read_bytes())
    (tmp_path / "empty.mkv").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video\n" * 50)
    assert is_video(tmp_path / "no_extension") and is_video(tmp_path / "movie.jpg")
    assert not is_video(png) and not is_video(tmp_path / "empty.mkv") and not is_video(tmp_path / "notes.mp4")
    assert not is_video(tmp_path / "missing.mkv")


def test_layer_imports_no_torch_and_no_other_nafcli_module():
    """The video layer sits below inference: numpy, PyAV, the standard library, nafcli.errors and the
    file helpers of its own layer only (nafcli._version comes with the package root)."""
    import ast
    import subprocess
    import sys

    code = ("import sys, nafcli.imaging.video; "
            "print(sorted(m for m in sys.modules if m.startswith(('nafcli', 'torch', 'PIL', 'cv2'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = ast.literal_eval(out.stdout)
    assert loaded == ["nafcli", "nafcli._version", "nafcli.errors", "nafcli.imaging", "nafcli.imaging.files",
                      "nafcli.imaging.video",
                      "nafcli.imaging.video_decode", "nafcli.imaging.video_encode", "nafcli.imaging.video_probe"]


def test_parse_time_forms_and_errors():
    assert parse_time("12.5") == 12.5
    assert parse_time("1:02") == 62
    assert parse_time("00:01:02.500") == pytest.approx(62.5)
    assert parse_time("2:00:00") == 7200
    for bad in ("", "-1", "1:60", "1:61:00", "abc", "1::2", "1.2.3"):
        with pytest.raises(UsageError, match="time"):
            parse_time(bad)


def test_probe_reports_what_the_file_holds(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", codec="libx264", pix_fmt="yuv420p", frames=25, audio="aac",
                     rotation=90, colour=(1, 1, 1, 1))
    info = probe(clip)
    assert (info.codec, info.width, info.height, info.pix_fmt, info.bit_depth) == ("h264", 64, 48, "yuv420p", 8)
    assert (info.frames, info.frames_exact, info.fps) == (25, True, 25.0)
    assert info.duration == pytest.approx(1.0)
    assert info.rotation == 90 and info.display_matrix is not None
    assert (info.color_range, info.color_primaries, info.color_trc, info.colorspace) == (1, 1, 1, 1)
    assert [(s.type, s.codec, s.language) for s in info.streams] == [("video", "h264", "und"),
                                                                     ("audio", "aac", "fra")]
    d = info.as_dict()
    assert d["color_primaries"] == "bt709" and d["frame_rate"] == "25/1" and d["metadata"]["title"]


# --- what the transcode keeps ------------------------------------------------------------------------------


def test_lossless_frames_timestamps_audio_and_metadata(tmp_path):
    """FFV1 in Matroska, RGB-exact pixel format: every output frame is restore(input frame) exactly, with
    the input's timestamps, rate and duration, its audio packets byte for byte and its tags."""
    src = make_clip(tmp_path / "in.mkv", frames=30, chapters=True, subtitles=True)
    seen: list[int] = []
    result = transcode(src, tmp_path / "out.mkv", blur, batch_size=4,
                       progress=lambda done, total: seen.append(done))
    a, b = decoded(src), decoded(tmp_path / "out.mkv")
    assert len(a) == len(b) == 30 == result.frames
    assert [p for p, _ in a] == [p for p, _ in b]
    for (_, x), (_, y) in zip(a, b, strict=True):
        assert np.abs(blur([x])[0].astype(int) - y).max() <= 1
    assert seen == [4, 8, 12, 16, 20, 24, 28, 30]
    assert packets(src) == packets(tmp_path / "out.mkv")
    assert packets(src, "subtitle") == packets(tmp_path / "out.mkv", "subtitle")
    assert [data for _, data in packets(src, "subtitle")] == [b"line 0", b"line 8", b"line 16", b"line 24"]
    pi, po = probe(src), probe(tmp_path / "out.mkv")
    assert (po.codec, po.pix_fmt, po.frame_rate, po.time_base) == ("ffv1", "bgr0", pi.frame_rate, pi.time_base)
    assert po.duration == pytest.approx(pi.duration, abs=0.001)  # Matroska keeps milliseconds
    assert po.metadata["title"] == "nafcli test clip"
    assert po.metadata["creation_time"] == pi.metadata["creation_time"] == "2024-05-01T12:34:56.000000Z"
    assert [s.language for s in po.streams] == [s.language for s in pi.streams] == [None, "fra", "eng"]
    with av.open(str(src)) as c, av.open(str(tmp_path / "out.mkv")) as d:
        assert d.chapters() == c.chapters() and len(c.chapters()) == 2
    assert result.codec_in == result.codec_out == "ffv1" and result.warnings == []
    assert not leftovers(tmp_path)


def test_variable_frame_rate_keeps_every_timestamp(tmp_path):
    src = make_clip(tmp_path / "vfr.mkv", frames=24, vfr=True)
    transcode(src, tmp_path / "out.mkv", invert)
    a, b = decoded(src), decoded(tmp_path / "out.mkv")
    steps = np.diff([p for p, _ in a])
    assert set(steps) == {20, 35, 50}  # the input really is variable
    assert [p for p, _ in a] == [p for p, _ in b]
    assert all(np.array_equal(invert([x])[0], y) for (_, x), (_, y) in zip(a, b, strict=True))
    assert probe(tmp_path / "out.mkv").duration == pytest.approx(probe(src).duration, abs=0.001)


def test_h264_mp4_in_h264_mp4_out_with_rotation_colour_and_audio(tmp_path, capfd):
    src = make_clip(tmp_path / "phone.mp4", codec="libx264", pix_fmt="yuv420p", frames=25, audio="aac",
                    rotation=-90, colour=(1, 1, 1, 1), smooth=True, vfr=True, sar=Fraction(8, 9))
    result = transcode(src, tmp_path / "out.mp4", lambda f: f)
    assert capfd.readouterr() == ("", "")  # nothing below the CLI prints, FFmpeg included
    pi, po = probe(src), probe(tmp_path / "out.mp4")
    assert (po.codec, po.container, result.codec_out) == ("h264", pi.container, "libx264")
    assert (po.rotation, po.display_matrix) == (-90, pi.display_matrix)
    assert po.sample_aspect_ratio == pi.sample_aspect_ratio == Fraction(8, 9)
    assert (po.color_range, po.color_primaries, po.color_trc, po.colorspace) == (1, 1, 1, 1)
    assert (po.pix_fmt, po.frames, po.time_base) == ("yuv420p", 25, pi.time_base)
    assert po.duration == pytest.approx(pi.duration, abs=float(pi.time_base))
    a, b = decoded(src), decoded(tmp_path / "out.mp4")
    assert [p for p, _ in a] == [p for p, _ in b]
    # visually lossless: a few levels on average, on this smooth pattern after two lossy encodes
    assert np.mean([np.abs(x.astype(int) - y).mean() for (_, x), (_, y) in zip(a, b, strict=True)]) < 2.0
    assert packets(src) == packets(tmp_path / "out.mp4")
    assert po.metadata["creation_time"] == pi.metadata["creation_time"]
    assert [s.language for s in po.streams] == [s.language for s in pi.streams] == ["und", "fra"]


@pytest.mark.parametrize(("ext", "codec", "audio", "container", "canonical"), [
    (".mov", "libx264", "aac", "mov,mp4,m4a,3gp,3g2,mj2", "h264"),
    (".webm", "libvpx-vp9", "libopus", "matroska,webm", "vp9"),
    (".avi", "mpeg4", "pcm_s16le", "avi", "mpeg4"),
    (".ts", "libx264", "aac", "mpegts", "h264"),
    (".mkv", "libsvtav1", "flac", "matroska,webm", "av1"),
])
def test_same_container_and_codec_by_default(tmp_path, capfd, monkeypatch, ext, codec, audio, container,
                                             canonical):
    monkeypatch.setenv("SVT_LOG", "1")  # SVT-AV1 reads it once a process (see the test below)
    src = make_clip(tmp_path / f"in{ext}", codec=codec, pix_fmt="yuv420p", audio=audio, frames=12,
                    smooth=True)
    capfd.readouterr()
    result = transcode(src, tmp_path / f"out{ext}", lambda f: f)
    assert capfd.readouterr() == ("", "")
    pi, po = probe(src), probe(tmp_path / f"out{ext}")
    assert (pi.container, pi.codec) == (container, canonical) == (po.container, po.codec)
    assert result.warnings == [] and result.codec_in == canonical
    a, b = decoded(src), decoded(tmp_path / f"out{ext}")
    assert [p for p, _ in a] == [p for p, _ in b] and len(b) == 12
    assert np.mean([np.abs(x.astype(int) - y).mean() for (_, x), (_, y) in zip(a, b, strict=True)]) < 3
    assert packets(src) == packets(tmp_path / f"out{ext}")


def test_svt_av1_prints_nothing_in_a_fresh_process(tmp_path):
    """SVT-AV1 writes its banner to stderr itself, and reads SVT_LOG once a process: only a fresh
    interpreter shows whether transcode quietens it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    src = make_clip(tmp_path / "in.mkv", frames=5, audio=None)
    code = ("import sys; from nafcli.imaging.video import transcode; "
            "r = transcode(sys.argv[1], sys.argv[2], lambda f: f, codec='libsvtav1'); print(r.codec_out)")
    run = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out.mkv")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert (run.returncode, run.stdout, run.stderr) == (0, "libsvtav1\n", "")


def test_old_rotate_tag_becomes_a_display_matrix(tmp_path):
    """Files from older tools carry a clockwise ``rotate`` tag instead of a display matrix."""
    src = make_clip(tmp_path / "in.mkv", frames=3, audio=None)
    with av.open(str(src)) as i, av.open(str(tmp_path / "tagged.mkv"), "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0], opaque=True)
        stream.metadata["rotate"] = "90"
        for p in i.demux(i.streams.video[0]):
            if p.size:
                p.stream = stream
                o.mux(p)
    assert probe(tmp_path / "tagged.mkv").rotation == -90
    transcode(tmp_path / "tagged.mkv", tmp_path / "out.mkv", invert)
    out = probe(tmp_path / "out.mkv")
    assert out.rotation == -90 and out.display_matrix is not None
    with av.open(str(tmp_path / "out.mkv")) as c:  # the tag is not repeated beside the matrix
        assert not {k.lower() for k in c.streams.video[0].metadata} & {"rotate"}


def test_colour_matrix_and_full_range_survive_the_rgb_round_trip(tmp_path):
    """YUV at PC range with the BT.601 matrix: tags kept, and the conversion back uses them (a wrong
    range or matrix would shift colours by several levels)."""
    tags = (2, 6, 6, 6)  # pc, smpte170m primaries / transfer / matrix
    src = make_clip(tmp_path / "in.mkv", pix_fmt="yuv444p", colour=tags, smooth=True)
    transcode(src, tmp_path / "out.mkv", lambda f: f)
    po = probe(tmp_path / "out.mkv")
    assert (po.color_range, po.color_primaries, po.color_trc, po.colorspace) == tags
    assert po.pix_fmt == "yuv444p"
    for (_, x), (_, y) in zip(decoded(src), decoded(tmp_path / "out.mkv"), strict=True):
        assert np.abs(x.astype(int) - y).max() <= 2


@pytest.mark.parametrize("codec", ["ffv1", "libx265"])
def test_ten_bit_stays_ten_bit_through_sixteen_bit_frames(tmp_path, capfd, codec):
    src = make_clip(tmp_path / "deep.mkv", codec=codec, pix_fmt="yuv420p10le", smooth=True, audio=None)
    got: list[np.ndarray] = []

    def keep(frames):
        got.extend(f.copy() for f in frames)
        return frames

    capfd.readouterr()
    result = transcode(src, tmp_path / "out.mkv", keep)
    assert capfd.readouterr() == ("", "")  # libx265 logs past FFmpeg unless told not to
    assert all(f.dtype == np.uint16 and f.shape == (48, 64, 3) for f in got) and len(got) == 24
    # the full 16-bit range, like a 16-bit PNG: the pattern peaks at 90 % (58982), not at 1023
    assert 50000 < max(int(f.max()) for f in got) <= 65535
    po = probe(tmp_path / "out.mkv")
    assert (po.pix_fmt, po.bit_depth, result.bit_depth) == ("yuv420p10le", 10, 16)
    a = decoded(src, "rgb48le")
    b = decoded(tmp_path / "out.mkv", "rgb48le")
    worst = max(np.abs(x.astype(int) - y).mean() for (_, x), (_, y) in zip(a, b, strict=True))
    # in 10-bit levels (64 sixteen-bit units each): lossless FFV1 keeps well under one; x265 at its
    # default CRF on a 64x48 clip a few (a wrong scale or matrix would cost hundreds)
    assert worst < (0.5 if codec == "ffv1" else 8) * 64


def test_start_and_duration_cut_video_and_audio_together(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=50, chapters=True)  # 2 s, 40 ms a frame; audio packets 96 ms
    result = transcode(src, tmp_path / "cut.mkv", invert, start=0.5, duration=1.0)
    a, b = decoded(src), decoded(tmp_path / "cut.mkv")
    kept = [(p - 500, x) for p, x in a if 500 <= p < 1500]  # frames 520 ... 1480 ms
    assert len(kept) == 25 == result.frames == len(b)
    assert [p for p, _ in kept] == [p for p, _ in b] and b[0][0] == 20
    assert all(np.array_equal(invert([x])[0], y) for (_, x), (_, y) in zip(kept, b, strict=True))
    audio_in = [(p - 500, data) for p, data in packets(src) if 500 <= p < 1500]
    assert audio_in[0][0] == 76  # the first packet starting in the span: 576 ms
    assert packets(tmp_path / "cut.mkv") == audio_in  # the same packets, shifted as the video
    assert probe(tmp_path / "cut.mkv").duration == pytest.approx(1.0, abs=0.05)
    with av.open(str(src)) as c, av.open(str(tmp_path / "cut.mkv")) as d:
        whole, cut = c.chapters(), d.chapters()
    def spans(chapters):  # in seconds: Matroska keeps chapters in nanoseconds
        return [(ch["start"] * ch["time_base"], ch["end"] * ch["time_base"], ch["metadata"]["title"])
                for ch in chapters]

    assert spans(whole) == [(0, Fraction(4, 5), "one"), (Fraction(4, 5), 2, "two")]
    assert spans(cut) == [(0, Fraction(3, 10), "one"), (Fraction(3, 10), 1, "two")]
    again = transcode(src, tmp_path / "tail.mkv", invert, start=parse_time("0:01.6"))
    assert again.frames == len([p for p, _ in a if p >= 1600]) == 10


def test_codec_and_crf_override_and_container_fallback(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=10, smooth=True)
    r = transcode(src, tmp_path / "h264.mkv", invert, codec="libx264", crf=30)
    assert (r.codec_out, probe(tmp_path / "h264.mkv").codec, r.pix_fmt_out) == ("libx264", "h264", "yuv444p")
    warnings: list[str] = []
    r = transcode(src, tmp_path / "out.ts", invert, warn=warnings.append)  # MPEG-TS holds no FFV1, FLAC
    assert r.codec_out == "libx264" and [s.codec for s in probe(tmp_path / "out.ts").streams] == ["h264"]
    assert len(warnings) == 2 and all("out.ts" in w for w in warnings)
    assert "cannot hold ffv1" in warnings[0] and "libx264 instead" in warnings[0] and "flac" in warnings[1]
    warnings.clear()
    r = transcode(src, tmp_path / "out.webm", invert, warn=warnings.append)  # nor H.264: VP9, its own
    assert r.codec_out == "libvpx-vp9" and probe(tmp_path / "out.webm").codec == "vp9"
    assert "libvpx-vp9 instead" in warnings[0]
    with pytest.raises(UnsupportedVideoError, match="cannot hold ffv1"):
        transcode(src, tmp_path / "bad.webm", invert, codec="ffv1")
    with pytest.raises(UnsupportedVideoError, match="no video encoder 'nosuchcodec'"):
        transcode(src, tmp_path / "bad.mkv", invert, codec="nosuchcodec")
    with pytest.raises(VideoWriteError, match="cannot write this kind of file"):
        transcode(src, tmp_path / "bad.xyz", invert)
    assert not (tmp_path / "bad.webm").exists() and not leftovers(tmp_path)


# --- failures, interrupts, memory ---------------------------------------------------------------------------


def _one_line(err: NafcliError, name: str) -> None:
    text = str(err)
    assert "\n" not in text and name in text


def test_zero_byte_not_a_video_audio_only_and_unknown_codec(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mkv").write_text("hello\n" * 100)
    make_clip(tmp_path / "both.mkv", frames=5)  # then strip the video: remux the audio alone
    audio_only(tmp_path / "both.mkv", tmp_path / "sound.mka")
    clip = make_clip(tmp_path / "ok.mkv", frames=5).read_bytes()
    (tmp_path / "alien.mkv").write_bytes(clip.replace(b"V_FFV1", b"V_ZZZZ"))  # a codec FFmpeg does not know
    cases = {"empty.mp4": (VideoReadError, "empty"), "text.mkv": (VideoReadError, "not a video"),
             "sound.mka": (VideoReadError, "no video stream"), "alien.mkv": (UnsupportedVideoError, "decode")}
    for name, (kind, words) in cases.items():
        with pytest.raises(kind, match=words) as err:
            transcode(tmp_path / name, tmp_path / f"out_{name}", invert)
        _one_line(err.value, name)
        assert not (tmp_path / f"out_{name}").exists()
    with pytest.raises(VideoReadError, match="empty"):
        probe(tmp_path / "empty.mp4")
    assert not leftovers(tmp_path)


def test_truncated_matroska_keeps_the_frames_that_decode(tmp_path):
    """Documented behaviour: the decodable prefix is restored and written, and a warning names the frame
    after which decoding stopped."""
    data = make_clip(tmp_path / "full.mkv", frames=50).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    warnings: list[str] = []
    result = transcode(tmp_path / "cut.mkv", tmp_path / "out.mkv", invert, warn=warnings.append)
    assert 0 < result.frames < 50 and result.truncated
    assert len(warnings) == 1 and f"stopped after frame {result.frames} " in warnings[0]
    out = decoded(tmp_path / "out.mkv")
    assert len(out) == result.frames
    assert all(np.array_equal(invert([x])[0], y) for (_, x), (_, y) in zip(decoded(tmp_path / "full.mkv"), out,
                                                                           strict=False))


def test_truncated_mp4_without_index_is_a_one_line_error(tmp_path):
    data = make_clip(tmp_path / "full.mp4", codec="libx264", pix_fmt="yuv420p", audio=None).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is written last
    with pytest.raises(VideoReadError, match="corrupt or truncated") as err:
        transcode(tmp_path / "cut.mp4", tmp_path / "out.mp4", invert)
    _one_line(err.value, "cut.mp4")
    assert not (tmp_path / "out.mp4").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupt_or_error_in_restore_leaves_no_file_and_no_thread(tmp_path, error):
    src = make_clip(tmp_path / "in.mkv", frames=40)
    calls = []
    parts_during: list[list[str]] = []

    def restore(frames):
        calls.append(len(frames))
        parts_during.append(leftovers(tmp_path))
        if len(calls) == 5:
            raise error("stop here")
        return invert(frames)

    with pytest.raises(error):
        transcode(src, tmp_path / "out.mkv", restore)
    assert parts_during[0] and parts_during[0][0].startswith(".out.mkv.") and parts_during[0][0].endswith(".mkv")
    assert not (tmp_path / "out.mkv").exists() and not leftovers(tmp_path)
    assert video_threads() == []


def test_existing_output_replaced_and_input_never_overwritten(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=5)
    (tmp_path / "out.mkv").write_bytes(b"old")
    transcode(src, tmp_path / "out.mkv", invert)
    assert len(decoded(tmp_path / "out.mkv")) == 5
    before = src.read_bytes()
    with pytest.raises(VideoWriteError, match="input itself"):
        transcode(src, src, invert)
    assert src.read_bytes() == before


def test_decoded_frames_never_exceed_the_queue_bound(tmp_path, monkeypatch):
    """restore holds its first batch until the decoder has filled its queue and had to wait: the peak
    is then exactly the bound, never more, although the clip is far longer."""
    channels: list[video.Channel] = []

    class Recorded(video.Channel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            channels.append(self)

    monkeypatch.setattr(video, "Channel", Recorded)
    src = make_clip(tmp_path / "in.mkv", frames=60, audio=None)
    held = []

    def restore(frames):
        if not held:
            held.append(channels[0].full.wait(30))  # the decode queue is channels[0]
        return frames

    result = transcode(src, tmp_path / "out.mkv", restore, queue_size=3)
    assert held == [True]
    assert result.queue_peak["decoded"] == 3 and result.queue_peak["restored"] <= 3
    assert result.frames == 60


def test_restore_must_return_matching_frames(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=5)
    with pytest.raises(ValueError, match="restore returned"):
        transcode(src, tmp_path / "out.mkv", lambda f: [x[:, :-1] for x in f])
    with pytest.raises(ValueError, match="restore returned 0 results"):
        transcode(src, tmp_path / "out.mkv", lambda f: [])
    assert not leftovers(tmp_path) and not (tmp_path / "out.mkv").exists()


def test_result_is_json_friendly(tmp_path):
    import json

    src = make_clip(tmp_path / "in.mkv", frames=5)
    d = transcode(src, tmp_path / "out.mkv", invert).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["frames"] == 5 and d["codec_out"] == "ffv1" and d["pix_fmt_in"] == "bgr0"
