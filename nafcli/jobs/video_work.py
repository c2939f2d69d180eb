"""The work on video jobs: one video in, one restored video out, beside the image kind (:mod:`.work`).

The video layer (:func:`nafcli.imaging.video.transcode`) already overlaps decoding, the network and
encoding on threads of its own, bounds the frames in flight and writes the output atomically, so this
kind does its whole transcode in the ``compute`` stage: ``read`` only probes the file (a bad one fails
early, on the reader thread, while the previous job computes) and ``write`` only reports. The frames go
through the same :class:`~nafcli.inference.restorer.Restorer` as photos (``restore_video``), so a frame
of the output is that frame restored as an image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ImageTooLargeError, NafcliError
from ..imaging.video import VideoInfo, VideoResult, probe
from ..inference.restorer import Restorer, RunInfo
from .plan import Job
from .runner import JobEvents, JobOutcome


@dataclass(frozen=True)
class VideoOptions:
    """How videos are written and cut (``--codec``, ``--crf``, ``--start``, ``--duration``); photos in the
    same batch ignore them. None: the video layer's defaults (the input's codec, "visually lossless"
    quality, the whole video; see docs/video.md)."""

    codec: str | None = None
    crf: int | None = None
    #: seconds from the start of the video
    start: float | None = None
    #: seconds kept from ``start`` on
    duration: float | None = None
    #: frames that may wait between decoding, restoring and encoding (each way)
    queue_size: int = 8


class Cancelled(NafcliError):
    """The run stopped (Ctrl-C) while this video was being restored on a worker thread."""


class _Runs:
    """How the batches of one video ran, summed into one :class:`RunInfo` (the first batch's settings,
    every batch's seconds), and their notes once each."""

    def __init__(self) -> None:
        self.info: RunInfo | None = None
        self.notes: list[str] = []

    def add(self, info: RunInfo) -> None:
        if self.info is None:
            self.info = dataclasses.replace(info, warnings=[])
        else:
            self.info.seconds += info.seconds
            self.info.compile_seconds += info.compile_seconds
        self.notes.extend(w for w in info.warnings if w not in self.notes)


class VideoWork:
    """Videos in, videos out: probe, then restore every frame and encode (one call), then report."""

    def __init__(self, restorer: Restorer, options: VideoOptions = VideoOptions(), *,
                 max_pixels: int | None = None, notes: tuple[str, ...] = ()) -> None:
        self.restorer = restorer
        self.options = options
        self.max_pixels = max_pixels
        #: said once per video (e.g. that ``--format`` applies to photos only)
        self.notes = notes

    def read(self, job: Job, events: JobEvents) -> VideoInfo:
        info = probe(job.inputs[0])
        if self.max_pixels and info.width * info.height > self.max_pixels:
            raise ImageTooLargeError(
                f"{job.inputs[0]}: frames of {info.width}x{info.height} ({info.width * info.height / 1e6:.1f} MP) "
                f"are above --max-pixels {self.max_pixels / 1e6:g}M"
            )
        return info

    def compute(self, job: Job, info: VideoInfo, events: JobEvents) -> tuple[VideoResult, RunInfo | None]:
        for note in self.notes:
            events.warning(job, f"{job.inputs[0]}: {note}")
        o = self.options
        runs = _Runs()

        def progress(done: int, total: int | None) -> None:
            # Ctrl-C reaches the main thread only; a worker thread learns of it here, after each batch,
            # and the video layer then removes the partial output as it does for Ctrl-C itself
            if events.cancelled:
                raise Cancelled(f"{job.inputs[0]}: stopped (the run was interrupted)")
            events.frames(done, total)

        result = self.restorer.restore_video(
            job.inputs[0], job.outputs[0], codec=o.codec, crf=o.crf, start=o.start, duration=o.duration,
            batch_size=self.restorer.frames_per_pass(info.height, info.width), queue_size=o.queue_size,
            progress=progress, warn=lambda message: events.warning(job, message), on_batch=runs.add,
        )
        for note in runs.notes:
            events.warning(job, f"{job.inputs[0]}: {note}")
        return result, runs.info

    def write(self, job: Job, info: VideoInfo, done: tuple[VideoResult, RunInfo | None],
              events: JobEvents) -> JobOutcome:
        result, run = done
        details: dict[str, Any] = {**(run.details() if run is not None else {}), "input_size": [info.width, info.height],
                                   "output_size": [info.width, info.height], "video": video_record(result)}
        return JobOutcome(megapixels=result.frames * info.width * info.height / 1e6, details=details, run=run)

    def __call__(self, job: Job, events: JobEvents) -> JobOutcome:
        """All three stages in one call (a :class:`~nafcli.jobs.runner.JobFunction`)."""
        info = self.read(job, events)
        return self.write(job, info, self.compute(job, info, events), events)


def video_record(result: VideoResult) -> dict[str, Any]:
    """The fields a video adds to its ``--json`` record."""
    return {"kind": "video", "frames": result.frames, "duration": round(result.duration, 6),
            "fps": None if result.fps is None else round(result.fps, 6), "codec_in": result.codec_in,
            "codec_out": result.codec_out, "pix_fmt_in": result.pix_fmt_in, "pix_fmt_out": result.pix_fmt_out,
            "container": result.container, "streams_copied": result.streams_copied, "truncated": result.truncated}
