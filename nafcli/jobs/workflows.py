"""The workflows: discover -> plan -> validate -> load (only when there is work) -> run -> results.

One function per command family, called by the CLI and from Python with the same options:
:func:`restore_paths` (denoise, deblur: any files, folders and patterns) and :func:`super_resolve` (stereo
pairs). Options come in three small records (:class:`ModelChoice`, :class:`RunSettings`,
:class:`OutputOptions`); progress, warnings and per-file results go to an :class:`~.runner.Events` object;
the result is a :class:`~.runner.BatchReport`. Nothing here prints.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..imaging.read import image_size
from ..inference.allocator import tune_for_tiles
from ..inference.compiled import parse_mode
from ..inference.restorer import Restorer
from ..inference.settings import choose_precision, configure_threads, resolve_devices
from ..inference.sizing import parse_size
from ..weights.loader import describe_choice, load
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
    #: ``auto`` (compile when the planned work repays the warm-up), ``on``/True, ``off``/False
    compile: bool | str = "auto"
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
) -> BatchReport:
    """Restore every image among ``inputs`` (files, folders, glob patterns) with a ``task`` model."""
    spec = OutputSpec(task=task, output=output.output, suffix=output.suffix, fmt=output.fmt,
                      overwrite=output.overwrite)
    exclude = [output.output] if output.output is not None and output.output.is_dir() else []
    sources = discover(inputs, recursive=recursive, exclude_suffix=spec.effective_suffix or None,
                       exclude_dirs=exclude)
    if not sources:
        raise UsageError("no images found in " + ", ".join(map(str, inputs)))
    jobs = plan([[s] for s in sources], spec)
    return _run(jobs, task, model, run, output, fail_fast, events or Events())


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
    jobs = plan(groups, spec, file_output=False)
    return _run(jobs, "stereo-sr", model, run, output, fail_fast, events or Events())


def _run(jobs: list[Job], task: str, choice: ModelChoice, run: RunSettings, output: OutputOptions,
         fail_fast: bool, events: Events) -> BatchReport:
    # Everything the command line can get wrong is checked before any input is skipped or run.
    devices = resolve_devices(run.device)
    choices = [choose_precision(run.precision, device) for device in devices]
    compile_mode = parse_mode(run.compile)
    tile = parse_size(run.tile, "--tile")
    label = describe_choice(task=task, model=choice.model, weights=choice.weights, scale=choice.scale)
    workers: list[ImageWork] = []
    if any(j.runnable for j in jobs):
        loaded = load(task=task, model=choice.model, weights=choice.weights, tlc=choice.tlc, scale=choice.scale,
                      offline=choice.offline, progress=events.download)
        configure_threads(run.threads, devices[0], workers=len(devices))
        tune_for_tiles("auto" if tile is None else tile)
        for warning in dict.fromkeys(c.warning for c in choices if c.warning):
            events.run_warning(warning)
        runnable = [j for j in jobs if j.runnable]
        for i, device in enumerate(devices):
            # one copy of the weights per device (the first worker takes the loaded one)
            model = loaded if i == 0 else copy.deepcopy(loaded)
            restorer = Restorer(model, device=device, precision=run.precision, compile=compile_mode,
                                fast=not run.reference, tile=tile, overlap=run.overlap, batch_size=run.batch_size)
            if compile_mode == "auto":
                # each worker gets about its share of the batch
                share = runnable[i :: len(devices)]
                restorer.plan_inputs(size for job in share if (size := image_size(job.inputs[0])) is not None)
            workers.append(restore_job(restorer, max_pixels=output.max_pixels or None, quality=output.quality))
        label = loaded.label
    events.batch_started(len(jobs), label)
    report = run_jobs(jobs, workers or [WholeJob(_nothing_to_run)], events=events, fail_fast=fail_fast)
    report.model = label
    return report


def _nothing_to_run(job: Job, events: Events):  # noqa: ANN202 - never called: every job is skipped or refused
    raise AssertionError(f"{job.name}: planned as skipped or refused, yet run")
