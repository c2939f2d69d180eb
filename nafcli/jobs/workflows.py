"""The workflows: validate -> discover -> plan -> load (only when there is work) -> run -> results.

One function per command family, called by the CLI and from Python with the same options:
:func:`restore_paths` (denoise, deblur: any files, folders and patterns) and :func:`super_resolve` (stereo
pairs). Options come in three small records (:class:`ModelChoice`, :class:`RunSettings`,
:class:`OutputOptions`); progress, warnings and per-file results go to an :class:`~.runner.Events` object;
the result is a :class:`~.runner.BatchReport`. Nothing here prints.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..archs import LoadedModel, TilingMode
from ..errors import DeviceError, NafcliError, UsageError
from ..imaging.formats import OUTPUT_FORMATS, normalise_format
from ..inference.allocator import tune_for_tiles
from ..inference.restorer import Restorer
from ..inference.settings import PRECISIONS, check_precision, configure_threads, resolve_devices
from ..inference.sizing import check_cut, parse_size
from ..weights.loader import Choice, check_choice, load, resolve_entry, resolve_tlc
from .cluster import ScaleOut, check_scale_out, run_on_ray_cluster, shard_jobs
from .discover import discover
from .plan import Job, OutputSpec, plan, stereo_groups
from .runner import BatchReport, Events, WholeJob, run_jobs
from .work import ImageWork, restore_job

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
    scale_out: ScaleOut = ScaleOut(),
) -> BatchReport:
    """Restore every image among ``inputs`` (files, folders, glob patterns) with a ``task`` model;
    ``scale_out``: a shard of the batch, on Ray or not (:mod:`.cluster`)."""
    checked = validate(task, model, run, output, scale_out)
    spec = _output_spec(task, output, model, checked)
    exclude = [output.output] if output.output is not None and output.output.is_dir() else []
    sources = discover(inputs, recursive=recursive, exclude_suffix=spec.names, exclude_dirs=exclude)
    if not sources:
        raise UsageError("no images found in " + ", ".join(map(str, inputs)))
    jobs = plan([[s] for s in sources], spec)
    report = _run(jobs, task, checked, model, run, output, fail_fast, events or Events(), scale_out)
    report.in_subfolders = sources.in_subfolders
    return report


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
    jobs = plan(groups, spec, file_output=False)
    return _run(jobs, "stereo-sr", checked, model, run, output, fail_fast, events or Events(), scale_out)


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
         output: OutputOptions, fail_fast: bool, events: Events, scale_out: ScaleOut = ScaleOut()) -> BatchReport:
    if checked.shard is not None:
        jobs = shard_jobs(jobs, *checked.shard)
    if scale_out.on_ray:
        return _run_on_ray(jobs, task, checked, choice, run, output, fail_fast, events, scale_out)
    devices, tile, label = checked.devices, checked.tile, checked.label
    workers: list[ImageWork] = []
    if any(j.runnable for j in jobs):
        loaded = load(task=task, model=choice.model, weights=choice.weights, tlc=choice.tlc, scale=choice.scale,
                      offline=choice.offline, progress=events.download)
        for message in loaded.warnings:
            events.warning(None, message)
        configure_threads(run.threads, devices[0], workers=len(devices))
        tune_for_tiles("auto" if tile is None else tile)
        for i, device in enumerate(devices):
            # one copy of the weights per device (the first worker takes the loaded one)
            model = loaded if i == 0 else copy.deepcopy(loaded)
            workers.append(_image_work(model, device, run, output, tile))
        label = loaded.label
    events.batch_started(len(jobs), label)
    report = run_jobs(jobs, workers or [WholeJob(_nothing_to_run)], events=events, fail_fast=fail_fast)
    report.model = label
    return report


def _image_work(model: LoadedModel, device: torch.device, run: RunSettings, output: OutputOptions,
                tile: int | None) -> ImageWork:
    """One worker's job function: the model on its device with the run's settings (local and Ray alike)."""
    restorer = Restorer(model, device=device, precision=run.precision, compile=run.compile,
                        fast=not run.reference, tile=tile, overlap=run.overlap, batch_size=run.batch_size)
    return restore_job(restorer, max_pixels=output.max_pixels or None, quality=output.quality)


def _run_on_ray(jobs: list[Job], task: str, checked: Checked, choice: ModelChoice, run: RunSettings,
                output: OutputOptions, fail_fast: bool, events: Events, scale_out: ScaleOut) -> BatchReport:
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
    build = functools.partial(_ray_worker, task, replace(choice, offline=True), run, output, checked.tile)
    report = run_on_ray_cluster(jobs, build, scale_out=scale_out, device=run.device, threads=run.threads or 0,
                                events=events, fail_fast=fail_fast)
    report.model = label
    return report


def _ray_worker(task: str, choice: ModelChoice, run: RunSettings, output: OutputOptions, tile: int | None,
                device: str, threads: int) -> ImageWork:
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
    return _image_work(loaded, dev, run, output, tile)


def _nothing_to_run(job: Job, events: Events):  # noqa: ANN202 - never called: every job is skipped or refused
    raise AssertionError(f"{job.name}: planned as skipped or refused, yet run")
