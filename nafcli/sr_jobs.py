"""Stereo SR as batch jobs: pairs (and single images) planned into :class:`nafcli.batch.Job` items, and
the job function that runs one. Running, skipping, failures and exit codes are
:func:`nafcli.batch.run_jobs`'s, so ``nafcli sr`` behaves as denoise does.

Each pair is one job with two inputs and two outputs. A file that could not be paired becomes a job
with a ``problem`` (reported as failed, by name, with the reason): nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .batch import EXTENSIONS, Events, Job, JobFunction, JobOutcome, OutputSpec, output_format, same_file
from .imageio import read_image, write_image
from .pairing import Pair, Unmatched


def output_name(src: Path, spec: OutputSpec) -> str:
    """``0001_L.png`` -> ``0001_L_sr.png`` (the extension follows the input's format, as for denoise)."""
    return f"{src.stem}{spec.effective_suffix}{EXTENSIONS[output_format(src, spec.fmt)]}"


def plan_sr(
    pairs: Sequence[Pair],
    singles: Sequence[Path],
    unmatched: Sequence[Unmatched],
    spec: OutputSpec,
    *,
    subfolders: bool = False,
) -> list[Job]:
    """Jobs for pairs, single images (run as both views) and unmatched files.

    Outputs go beside each input, or into ``spec.output`` (a folder); with ``subfolders`` (two input
    folders, whose files share names) into ``output/left`` and ``output/right``.
    """
    out = spec.output
    inputs = {p.resolve() for pair in pairs for p in (pair.left, pair.right)} | {p.resolve() for p in singles}
    claimed: dict[Path, Path] = {}
    jobs: list[Job] = []

    def dst(src: Path, side: str) -> Path:
        folder = src.parent if out is None else (out / side if subfolders else out)
        return folder / output_name(src, spec)

    for pair in pairs:
        jobs.append(_job((pair.left, pair.right), (dst(pair.left, "left"), dst(pair.right, "right")),
                         spec, inputs, claimed))
    for src in singles:
        jobs.append(_job((src,), (dst(src, ""),), spec, inputs, claimed))
    for u in unmatched:
        jobs.append(Job((u.path,), (), problem=f"{u.path}: not processed: {u.reason}"))
    return jobs


def _job(
    srcs: tuple[Path, ...], dsts: tuple[Path, ...], spec: OutputSpec, inputs: set[Path], claimed: dict[Path, Path]
) -> Job:
    for src, d in zip(srcs, dsts, strict=True):
        key = d.resolve()
        if key in inputs or same_file(src, d):
            return Job(srcs, dsts, problem=f"{src}: output {d} would overwrite an input; use --suffix or -o")
        if key in claimed:
            return Job(srcs, dsts, problem=f"{src}: output {d} is also the output of {claimed[key]}; use -o")
    for src, d in zip(srcs, dsts, strict=True):
        claimed[d.resolve()] = src
    if not spec.overwrite and all(d.exists() for d in dsts):
        names = " and ".join(str(d) for d in dsts)
        return Job(srcs, dsts, skip=f"{names} exist (use --overwrite to replace them)")
    return Job(srcs, dsts)


def sr_job(restorer: Any, *, max_pixels: int | None = None, quality: int | None = None) -> JobFunction:
    """The job function for ``nafcli sr``: read the views, super-resolve them together, write both.

    A single input is fed as both views (the authors' suggestion for mono input) and the left output
    is written. Strip fallbacks and format notes are reported as warnings through ``events``."""

    def work(job: Job, events: Events) -> JobOutcome:
        warnings: list[str] = []

        def warn(message: str) -> None:
            warnings.append(message)
            events.warning(job, message)

        views = [read_image(src, max_pixels=max_pixels) for src in job.inputs]
        for v in views:
            for w in v.info.pop("warnings", []):
                warn(w)
        left, right = views[0], views[-1]
        restorer.on_warning = warn
        try:
            outs = restorer.restore_image_pair(left, right, events.tiles)
        finally:
            restorer.on_warning = None
        for d, image in zip(job.outputs, outs, strict=False):
            for w in write_image(d, image, quality=quality):
                warn(w)
        run = restorer.last_run
        details = {
            "device": str(run.device), "precision": run.precision, "tiles": run.tiles,
            "tile_grid": list(run.grid), "tile_size": run.tile_size, "size": [left.width, left.height],
        }
        megapixels = left.width * left.height * len(views) / 1e6
        return JobOutcome(megapixels=megapixels, warnings=warnings, details=details)

    return work
