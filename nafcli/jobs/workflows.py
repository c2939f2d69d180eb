"""The workflows: discover -> plan -> validate -> load (only when there is work) -> run -> results.

One function per command family, called by the CLI and from Python with the same options:
:func:`restore_paths` (denoise, deblur: any files, folders and patterns, photos and videos) and
:func:`super_resolve` (stereo pairs). Options come in small records (:class:`ModelChoice`,
:class:`RunSettings`, :class:`OutputOptions`, and :class:`VideoOptions` for videos); progress, warnings
and per-file results go to an :class:`~.runner.Events` object; the result is a
:class:`~.runner.BatchReport`. Nothing here prints.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from ..inference.allocator import tune_for_tiles
from ..inference.restorer import Restorer
from ..inference.settings import check_precision, configure_threads, resolve_devices
from ..inference.sizing import parse_size
from ..weights.loader import describe_choice, load
from .discover import Source, discover
from .names import input_kind
from .plan import Job, OutputSpec, plan, stereo_groups
from .runner import BatchReport, Events, WholeJob, Work, run_jobs
from .video_work import VideoOptions, VideoWork
from .work import ByKind, restore_job

#: ``--max-pixels`` when none is given: refuse images above 200 megapixels
DEFAULT_MAX_PIXELS = 200_000_000


@dataclass(frozen=True)
class ModelChoice:
    """Which model: a registry id, a weights file, or the task's default; TLC and scale overrides."""

    model: str | None = None
    weights: str | os.PathLike[str] | None = None
    tlc: bool | None = None
    offline: bool = False
    scale: int | None = None


@dataclass(frozen=True)
class RunSettings:
    """How the model runs: device, precision, threads, tiles (``auto``/N/0), compiled or reference path."""

    #: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``all`` (every CUDA device) or a list (``cuda:0,cuda:2``):
    #: one worker per device over the same jobs
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    tile: int | str | None = "auto"
    overlap: int | str | None = None
    batch_size: int | str | None = "auto"
    compile: bool = False
    #: the authors' computation instead of the fast path (debugging)
    reference: bool = False


@dataclass(frozen=True)
class OutputOptions:
    """Where and how results are written."""

    output: Path | None = None
    suffix: str | None = None
    fmt: str | None = None
    quality: int | None = None
    overwrite: bool = False
    #: refuse larger images (0 or None: no limit)
    max_pixels: int | None = DEFAULT_MAX_PIXELS


def restore_paths(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    task: str,
    model: ModelChoice = ModelChoice(),
    run: RunSettings = RunSettings(),
    output: OutputOptions = OutputOptions(),
    recursive: bool = False,
    fail_fast: bool = False,
    events: Events | None = None,
    video: VideoOptions = VideoOptions(),
) -> BatchReport:
    """Restore every image and video among ``inputs`` (files, folders, glob patterns) with a ``task``
    model. Videos are recognised by content and restored frame by frame (``video``: codec, quality,
    trimming); ``--format`` and ``--quality`` are for photos."""
    spec = OutputSpec(task=task, output=output.output, suffix=output.suffix, fmt=output.fmt,
                      overwrite=output.overwrite)
    exclude = [output.output] if output.output is not None and output.output.is_dir() else []
    sources = discover(inputs, recursive=recursive, exclude_suffix=spec.effective_suffix or None,
                       exclude_dirs=exclude)
    if not sources:
        raise UsageError("no images found in " + ", ".join(map(str, inputs)))
    jobs = plan([[s] for s in sources], spec)
    if any(j.kind == "video" and j.runnable for j in jobs):
        _check_video_options(video)
    return _run(jobs, task, model, run, output, fail_fast, events or Events(), video)


def _check_video_options(video: VideoOptions) -> None:
    """Options that would fail every video the same way are usage errors, said once before any runs."""
    from ..imaging.video_encode import has_encoder

    if video.codec is not None and not has_encoder(video.codec):
        raise UsageError(f"--codec {video.codec}: no such video encoder in the FFmpeg that PyAV bundles "
                         "(e.g. libx264, libx265, libsvtav1, libvpx-vp9, ffv1)")
    if video.crf is not None and not 0 <= video.crf <= 63:
        raise UsageError(f"--crf must be between 0 and 63, not {video.crf}")
    if video.start is not None and video.start < 0:
        raise UsageError(f"--start must not be negative, not {video.start}")
    if video.duration is not None and video.duration <= 0:
        raise UsageError(f"--duration must be positive, not {video.duration}")
    if video.queue_size < 1:
        raise UsageError(f"the video queue size must be at least 1, not {video.queue_size}")


def super_resolve(
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    left: str | os.PathLike[str] | None = None,
    right: str | os.PathLike[str] | None = None,
    model: ModelChoice = ModelChoice(),
    run: RunSettings = RunSettings(),
    output: OutputOptions = OutputOptions(),
    fail_fast: bool = False,
    events: Events | None = None,
) -> BatchReport:
    """Stereo super-resolution of ``LEFT RIGHT``, a folder of pairs, one image (as both views), or two
    folders paired by name (``left``/``right``)."""
    spec = OutputSpec(task="stereo-sr", output=output.output, suffix=output.suffix, fmt=output.fmt,
                      overwrite=output.overwrite)
    groups = stereo_groups([Path(p) for p in inputs], None if left is None else Path(left),
                           None if right is None else Path(right), exclude=spec.effective_suffix or None)
    if not groups:
        raise UsageError("no images found to super-resolve")
    groups = [[_refuse_video(s) for s in g] for g in groups]
    jobs = plan(groups, spec, file_output=False)
    return _run(jobs, "stereo-sr", model, run, output, fail_fast, events or Events())


def _refuse_video(source: Source) -> Source:
    """Stereo super-resolution needs the two views of a scene; a video is refused (failed, with the reason)
    rather than read as a broken image."""
    if source.problem is None and source.path.is_file() and input_kind(source.path) == "video":
        return replace(source, problem=f"{source.path}: is a video; stereo super-resolution (nafcli sr) takes "
                       "left/right image pairs, not videos (nafcli denoise and deblur take videos)")
    return source


def _run(jobs: list[Job], task: str, choice: ModelChoice, run: RunSettings, output: OutputOptions,
         fail_fast: bool, events: Events, video: VideoOptions | None = None) -> BatchReport:
    # Everything the command line can get wrong is checked before any input is skipped or run.
    devices = resolve_devices(run.device)
    for device in devices:
        check_precision(run.precision, device)
    tile = parse_size(run.tile, "--tile")
    label = describe_choice(task=task, model=choice.model, weights=choice.weights, scale=choice.scale)
    workers: list[Work] = []
    videos = video is not None and any(j.kind == "video" for j in jobs)
    if any(j.runnable for j in jobs):
        loaded = load(task=task, model=choice.model, weights=choice.weights, tlc=choice.tlc, scale=choice.scale,
                      offline=choice.offline, progress=events.download)
        configure_threads(run.threads, devices[0], workers=len(devices))
        tune_for_tiles("auto" if tile is None else tile)
        for i, device in enumerate(devices):
            # one copy of the weights per device (the first worker takes the loaded one)
            model = loaded if i == 0 else copy.deepcopy(loaded)
            restorer = Restorer(model, device=device, precision=run.precision, compile=run.compile,
                                fast=not run.reference, tile=tile, overlap=run.overlap, batch_size=run.batch_size)
            workers.append(_work(restorer, output, video if videos else None))
        label = loaded.label
    events.batch_started(len(jobs), label)
    report = run_jobs(jobs, workers or [WholeJob(_nothing_to_run)], events=events, fail_fast=fail_fast)
    report.model = label
    return report


def _work(restorer: Restorer, output: OutputOptions, video: VideoOptions | None) -> Work:
    """The job kinds of a batch on one device: photos, and videos when the batch has any."""
    max_pixels = output.max_pixels or None
    images = restore_job(restorer, max_pixels=max_pixels, quality=output.quality)
    if video is None:
        return images
    notes = (f"--format {output.fmt} applies to photos; a video keeps its container (name another with "
             "-o FILE.mkv)",) if output.fmt else ()
    return ByKind({"image": images, "video": VideoWork(restorer, video, max_pixels=max_pixels, notes=notes)})


def _nothing_to_run(job: Job, events: Events):  # noqa: ANN202 - never called: every job is skipped or refused
    raise AssertionError(f"{job.name}: planned as skipped or refused, yet run")
