"""The workflows: validate -> discover -> plan -> load (only when there is work) -> run -> results.

One function per command family, called by the CLI and from Python with the same options:
:func:`restore_paths` (denoise, deblur: any files, folders and patterns, photos and videos) and
:func:`super_resolve` (stereo pairs). Options come in small records (:class:`ModelChoice`,
:class:`RunSettings`, :class:`OutputOptions`, and :class:`VideoOptions` for videos); progress, warnings
and per-file results go to an :class:`~.runner.Events` object; the result is a
:class:`~.runner.BatchReport`. Nothing here prints.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..archs import LoadedModel, TilingMode
from ..errors import DeviceError, NafcliError, UsageError
from ..imaging.formats import OUTPUT_FORMATS, normalise_format
from ..imaging.read import image_size
from ..inference.allocator import tune_for_tiles
from ..inference.compiled import parse_mode
from ..inference.cut_options import check_cut, parse_size
from ..inference.restorer import Restorer
from ..inference.settings import (
    PRECISIONS,
    check_precision,
    choose_precision,
    configure_threads,
    resolve_devices,
)
from ..weights.loader import Choice, check_choice, load, resolve_entry, resolve_tlc
from .cluster import ScaleOut, check_scale_out, run_on_ray_cluster, shard_jobs
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
    #: ``auto`` (compile when the planned work repays the warm-up), ``on``/True, ``off``/False
    compile: bool | str = "auto"
    #: the authors' computation instead of the fast path (debugging)
    reference: bool = False


@dataclass(frozen=True)
class OutputOptions:
    """Where and how results are written."""

    output: Path | None = None
    suffix: str | None = None
    #: the output's name without its extension, from ``{stem}``, ``{ext}``, ``{suffix}``, ``{model}``
    #: (default ``{stem}{suffix}``; see :mod:`nafcli.jobs.names`)
    name: str | None = None
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
    scale_out: ScaleOut = ScaleOut(),
) -> BatchReport:
    """Restore every image and video among ``inputs`` (files, folders, glob patterns) with a ``task``
    model. Videos are recognised by content and restored frame by frame (``video``: codec, quality,
    trimming); ``--format`` and ``--quality`` are for photos. ``scale_out``: a shard of the batch, on Ray
    or not (:mod:`.cluster`)."""
    checked = validate(task, model, run, output, scale_out)
    _check_video_options(video)
    spec = _output_spec(task, output, model, checked)
    exclude = [output.output] if output.output is not None and output.output.is_dir() else []
    sources = discover(inputs, recursive=recursive, exclude_suffix=spec.names, exclude_dirs=exclude)
    if not sources:
        raise UsageError("no images found in " + ", ".join(map(str, inputs)))
    jobs = plan([[s] for s in sources], spec)
    report = _run(jobs, task, checked, model, run, output, fail_fast, events or Events(), scale_out, video)
    report.in_subfolders = sources.in_subfolders
    return report


def _check_video_options(video: VideoOptions) -> None:
    """Options that would fail every video the same way are usage errors, said once before any input is
    looked at (like every other option, whether or not the inputs hold a video)."""
    if video.codec is not None:
        from ..imaging.video_encode import has_encoder  # PyAV: only when a codec is named

        if not has_encoder(video.codec):
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
    scale_out: ScaleOut = ScaleOut(),
) -> BatchReport:
    """Stereo super-resolution of ``LEFT RIGHT``, a folder of pairs, one image (as both views), or two
    folders paired by name (``left``/``right``)."""
    checked = validate("stereo-sr", model, run, output, scale_out)
    spec = _output_spec("stereo-sr", output, model, checked)
    groups = stereo_groups([Path(p) for p in inputs], None if left is None else Path(left),
                           None if right is None else Path(right), exclude=spec.names)
    if not groups:
        raise UsageError("no images found to super-resolve")
    groups = [[_refuse_video(s) for s in g] for g in groups]
    jobs = plan(groups, spec, file_output=False)
    return _run(jobs, "stereo-sr", checked, model, run, output, fail_fast, events or Events(), scale_out)


def _refuse_video(source: Source) -> Source:
    """Stereo super-resolution needs the two views of a scene; a video is refused (failed, with the reason)
    rather than read as a broken image."""
    if source.problem is None and source.path.is_file() and input_kind(source.path) == "video":
        return replace(source, problem=f"{source.path}: is a video; stereo super-resolution (nafcli sr) takes "
                       "left/right image pairs, not videos (nafcli denoise and deblur take videos)")
    return source


def _output_spec(task: str, output: OutputOptions, choice: ModelChoice, checked: Checked) -> OutputSpec:
    """The naming of a run's outputs; ``{model}`` in ``--name`` is the model id, or the weights file's
    stem (as :func:`validate` resolved it, without loading)."""
    model = Path(checked.label).stem if choice.weights is not None else checked.label
    return OutputSpec(task=task, output=output.output, suffix=output.suffix, fmt=output.fmt,
                      overwrite=output.overwrite, name=output.name, model=model)


@dataclass(frozen=True)
class Checked:
    """What :func:`validate` resolved on the way: the devices (none on Ray: its workers have their own),
    the tile (None: auto), the model's name and the shard ``(K, N)`` if any."""

    devices: list[torch.device]
    tile: int | None
    label: str
    shard: tuple[int, int] | None = None


def validate(task: str, choice: ModelChoice, run: RunSettings, output: OutputOptions,
             scale_out: ScaleOut = ScaleOut()) -> Checked:
    """Everything a command line can get wrong, checked before any input is found, skipped or run, so a
    batch whose outputs all exist still fails on a bad option (exit code 2), and loads nothing.

    The device and precision; the counts; the output options; the model (id, task, scale, and that its
    weights can be had: cached or downloadable; a weights file that exists and, from its key names and
    shapes alone, holds an architecture of this task and scale); the tile against its overlap, by the
    rules of the model's tiling (:func:`_tiling`); the shard and the Ray options
    (:func:`~.cluster.check_scale_out`). The weights themselves are read only when there is work, and
    the Ray cluster contacted only then; its workers' devices are checked where they run.
    """
    shard = check_scale_out(scale_out, run.device)
    devices = [] if scale_out.on_ray else resolve_devices(run.device)
    for device in devices:
        check_precision(run.precision, device)
    if run.precision not in PRECISIONS:
        check_precision(run.precision, torch.device("cpu"))  # the unknown-precision message
    if run.threads is not None and run.threads < 0:
        raise UsageError(f"--threads must be >= 0 (0: the usable cores), not {run.threads}")
    parse_mode(run.compile)
    tile = parse_size(run.tile, "--tile")
    overlap = parse_size(run.overlap, "--overlap")
    parse_size(run.batch_size, "--batch-size", minimum=1)
    _check_output(output)
    picked = check_choice(task=task, model=choice.model, weights=choice.weights, scale=choice.scale,
                          offline=choice.offline)
    mode = _tiling(task, picked, choice)
    if mode is not None:
        check_cut(mode, tile, overlap)
    return Checked(devices, tile, picked.label, shard)


def _check_output(output: OutputOptions) -> None:
    """The output options the command line parser checks too, for callers of the Python API."""
    if output.quality is not None and not 1 <= output.quality <= 100:
        raise UsageError(f"--quality must be 1 to 100, not {output.quality}")
    if output.fmt is not None and normalise_format(output.fmt) is None:
        raise UsageError(f"--format {output.fmt!r}: use {', '.join(OUTPUT_FORMATS)}")
    if output.max_pixels is not None and output.max_pixels < 0:
        raise UsageError(f"--max-pixels must be >= 0 (0: no limit), not {output.max_pixels}")
    if output.suffix is not None and ("/" in output.suffix or os.sep in output.suffix):
        raise UsageError(f"--suffix {output.suffix!r}: a name suffix cannot hold a folder separator")


def _tiling(task: str, picked: Choice, choice: ModelChoice) -> TilingMode | None:
    """How the chosen model cuts images: its own spec's rule, or, for a weights file whose architecture
    could not be seen without loading it, the task's default model's (every model of a task cuts alike);
    None when neither is known."""
    if picked.entry is not None:
        spec = picked.entry.spec
        return spec.tiling(tlc=resolve_tlc(choice.tlc, spec=spec, entry=picked.entry))
    spec = picked.spec
    if spec is None:
        try:
            spec = resolve_entry(task=task).spec
        except NafcliError:
            return None
    return spec.tiling(tlc=resolve_tlc(choice.tlc, spec=spec, task=task))


def _run(jobs: list[Job], task: str, checked: Checked, choice: ModelChoice, run: RunSettings,
         output: OutputOptions, fail_fast: bool, events: Events, scale_out: ScaleOut = ScaleOut(),
         video: VideoOptions | None = None) -> BatchReport:
    if checked.shard is not None:
        jobs = shard_jobs(jobs, *checked.shard)
    video = video if video is not None and any(j.kind == "video" and j.runnable for j in jobs) else None
    if scale_out.on_ray:
        return _run_on_ray(jobs, task, checked, choice, run, output, fail_fast, events, scale_out, video)
    devices, tile, label = checked.devices, checked.tile, checked.label
    workers: list[Work] = []
    if any(j.runnable for j in jobs):
        loaded = load(task=task, model=choice.model, weights=choice.weights, tlc=choice.tlc, scale=choice.scale,
                      offline=choice.offline, progress=events.download)
        for message in loaded.warnings:
            events.warning(None, message)
        configure_threads(run.threads, devices[0], workers=len(devices))
        tune_for_tiles("auto" if tile is None else tile)
        choices = [choose_precision(run.precision, device) for device in devices]
        for warning in dict.fromkeys(c.warning for c in choices if c.warning):
            events.run_warning(warning)
        runnable = [j for j in jobs if j.runnable]
        for i, device in enumerate(devices):
            # one copy of the weights per device (the first worker takes the loaded one)
            model = loaded if i == 0 else copy.deepcopy(loaded)
            # each worker gets about its share of the batch (photos: a video's frames decide as they come)
            share = runnable[i :: len(devices)]
            sizes = (size for job in share if (size := image_size(job.inputs[0])) is not None)
            workers.append(_work(model, device, run, output, tile, video, sizes))
        label = loaded.label
    events.batch_started(len(jobs), label)
    report = run_jobs(jobs, workers or [WholeJob(_nothing_to_run)], events=events, fail_fast=fail_fast)
    report.model = label
    return report


def _work(model: LoadedModel, device: torch.device, run: RunSettings, output: OutputOptions, tile: int | None,
          video: VideoOptions | None, sizes: Iterable[tuple[int, int]] = ()) -> Work:
    """One worker's job function, local and on Ray alike: the model on its device with the run's settings,
    for photos, and for videos when the batch has any. ``sizes``: the photos it will likely get, (height,
    width) each, for ``--compile auto`` to weigh the warm-up against."""
    compile_mode = parse_mode(run.compile)
    restorer = Restorer(model, device=device, precision=run.precision, compile=compile_mode,
                        fast=not run.reference, tile=tile, overlap=run.overlap, batch_size=run.batch_size)
    if compile_mode == "auto":
        restorer.plan_inputs(sizes)
    max_pixels = output.max_pixels or None
    images = restore_job(restorer, max_pixels=max_pixels, quality=output.quality)
    if video is None:
        return images
    notes = (f"--format {output.fmt} applies to photos; a video keeps its container (name another with "
             "-o FILE.mkv)",) if output.fmt else ()
    return ByKind({"image": images, "video": VideoWork(restorer, video, max_pixels=max_pixels, notes=notes)})


def _run_on_ray(jobs: list[Job], task: str, checked: Checked, choice: ModelChoice, run: RunSettings,
                output: OutputOptions, fail_fast: bool, events: Events, scale_out: ScaleOut,
                video: VideoOptions | None) -> BatchReport:
    """The runnable jobs on Ray (:mod:`.cluster`). The weights are resolved, downloaded and verified here,
    once, before any worker starts (its warnings and name reported as locally); each worker then loads
    them from the same cache or file, offline."""
    label = checked.label
    if any(j.runnable for j in jobs):
        loaded = load(task=task, model=choice.model, weights=choice.weights, tlc=choice.tlc, scale=choice.scale,
                      offline=choice.offline, progress=events.download)
        for message in loaded.warnings:
            events.warning(None, message)
        label = loaded.label
        del loaded  # the driver computes nothing
    events.batch_started(len(jobs), label)
    build = functools.partial(_ray_worker, task, replace(choice, offline=True), run, output, checked.tile, video)
    report = run_on_ray_cluster(jobs, build, scale_out=scale_out, device=run.device, threads=run.threads or 0,
                                events=events, fail_fast=fail_fast)
    report.model = label
    return report


def _ray_worker(task: str, choice: ModelChoice, run: RunSettings, output: OutputOptions, tile: int | None,
                video: VideoOptions | None, device: str, threads: int) -> Work:
    """A Ray worker's job function (runs there, once per worker): the checks that depend on the worker's
    device, the model loaded as the driver loaded it, the threads the worker was given."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"a Ray worker given a GPU finds no CUDA device (torch {torch.__version__})")
    check_precision(run.precision, dev)
    loaded = load(task=task, model=choice.model, weights=choice.weights, tlc=choice.tlc, scale=choice.scale,
                  offline=choice.offline)
    configure_threads(threads, dev)
    tune_for_tiles("auto" if tile is None else tile)
    return _work(loaded, dev, run, output, tile, video)


def _nothing_to_run(job: Job, events: Events):  # noqa: ANN202 - never called: every job is skipped or refused
    raise AssertionError(f"{job.name}: planned as skipped or refused, yet run")
