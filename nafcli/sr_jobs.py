"""Stereo SR jobs: pairs of files in, pairs of files out, one result per pair. No printing.

The batch rules are the denoise ones: an output that already exists is skipped unless ``overwrite``;
an input is never overwritten; a pair that fails is recorded with its one-line error and the run goes
on (``keep_going``), so a caller can report each failure by name and say so in the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import NafcliError, UsageError
from .imageio import read_image, write_image
from .pairing import OUTPUT_SUFFIX as SUFFIX
from .pipeline import Progress, Restorer


@dataclass(frozen=True)
class SRJob:
    """One stereo pair, or one image run as both views (``right is None``), and where the results go."""

    left: Path
    right: Path | None
    outputs: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.left.name if self.right is None else f"{self.left.name} + {self.right.name}"


@dataclass
class SRResult:
    job: SRJob
    status: Literal["done", "skipped", "failed"]
    error: str | None = None
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "left": str(self.job.left),
            "right": None if self.job.right is None else str(self.job.right),
            "outputs": [str(p) for p in self.job.outputs],
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            **self.info,
        }


def output_path(src: Path, out_dir: Path | None, *, ext: str = ".png") -> Path:
    """``0001_L.jpg`` -> ``0001_L_sr.png``, beside the input or in ``out_dir`` (PNG: lossless, 16-bit)."""
    return (out_dir if out_dir is not None else src.parent) / f"{src.stem}{SUFFIX}{ext}"


def pair_job(left: Path, right: Path, out_dir: Path | None, *, subfolders: bool = False) -> SRJob:
    """A job for a pair; ``subfolders`` puts the views in ``out_dir/left`` and ``out_dir/right`` (for
    two input folders, whose files share names)."""
    if subfolders and out_dir is not None:
        outs = (output_path(left, out_dir / "left"), output_path(right, out_dir / "right"))
    else:
        outs = (output_path(left, out_dir), output_path(right, out_dir))
    if outs[0] == outs[1]:
        raise UsageError(f"{left} and {right} would both be written to {outs[0]}; rename one or drop -o")
    return SRJob(left, right, outs)


def single_job(image: Path, out_dir: Path | None) -> SRJob:
    return SRJob(image, None, (output_path(image, out_dir),))


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def run_job(restorer: Restorer, job: SRJob, progress: Progress | None = None) -> None:
    """Read, super-resolve and write one job. Raises :class:`NafcliError` subclasses."""
    inputs = [job.left] if job.right is None else [job.left, job.right]
    for out in job.outputs:
        if any(_same(src, out) for src in inputs):
            raise UsageError(f"{out}: refusing to overwrite an input; choose another -o")
    left = read_image(job.left)
    if job.right is None:
        # Single-image SR as the authors suggest: the image is both views; the left output is kept.
        out_left, _ = restorer.restore_image_pair(left, left, progress)
        write_image(job.outputs[0], out_left)
        return
    right = read_image(job.right)
    out_left, out_right = restorer.restore_image_pair(left, right, progress)
    write_image(job.outputs[0], out_left)
    write_image(job.outputs[1], out_right)


def run_jobs(
    restorer: Restorer,
    jobs: Iterable[SRJob],
    *,
    overwrite: bool = False,
    keep_going: bool = True,
    on_start: Callable[[int, SRJob], None] | None = None,
    on_result: Callable[[int, SRResult], None] | None = None,
    progress: Progress | None = None,
) -> list[SRResult]:
    """Run every job; existing outputs are skipped unless ``overwrite``. With ``keep_going`` a failed
    job is recorded and the next one starts; without it the first failure ends the run (recorded too)."""
    results: list[SRResult] = []
    for i, job in enumerate(jobs):
        if on_start is not None:
            on_start(i, job)
        if not overwrite and all(p.exists() for p in job.outputs):
            result = SRResult(job, "skipped")
        else:
            t0 = time.perf_counter()
            try:
                run_job(restorer, job, progress)
                run = restorer.last_run
                result = SRResult(job, "done", seconds=time.perf_counter() - t0,
                                  info={"strips": run.tiles, "grid": list(run.grid)})
            except NafcliError as e:
                result = SRResult(job, "failed", error=str(e), seconds=time.perf_counter() - t0)
        results.append(result)
        if on_result is not None:
            on_result(i, result)
        if result.status == "failed" and not keep_going:
            break
    return results
