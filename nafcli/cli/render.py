"""How nafcli looks on a terminal: progress bars (files, tiles, downloads), one line per failure or warning,
JSON records, ``--verbose`` lines and the closing summary. The library reports through callbacks; this is
the only place they become text.

stdout gets data only (output paths, or JSON with ``--json``); everything else goes to stderr.
``--quiet`` leaves errors only: no progress, warnings, output paths, notes or summary (JSON records, asked
for explicitly, are still printed).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..jobs.plan import Job

if TYPE_CHECKING:
    from ..inference.restorer import RunInfo
    from ..jobs.runner import BatchReport, JobResult


def error(message: str) -> None:
    """One ``error:`` line on stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One informational line on stderr."""
    print(message, file=sys.stderr, flush=True)


def stdout(text: str) -> None:
    print(text, flush=True)


@contextmanager
def download_progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr fed by the hub's byte counts (hidden when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    console = Console(stderr=True)
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=console, transient=True, disable=not console.is_terminal)
    task = bar.add_task(label, total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def describe_run(info: RunInfo) -> str:
    """``cpu fp32, 3x4 tiles of 512x512 px (overlap 16, batch 1), 12.3 s`` or ``..., whole image, ...``."""
    if info.tile_size == 0:
        tiling = "whole image"
    else:
        rows, cols = info.grid
        th, tw = info.tile_shape
        tiling = f"{rows}x{cols} tiles of {tw}x{th} px (overlap {info.overlap}, batch {info.batch_size})"
    return f"{info.device} {info.precision}, {tiling}, {info.seconds:.1f} s"


class CliEvents:
    """The workflows' events drawn on a terminal: progress (files, tiles of the current image, with ETA)
    when stderr is a terminal, warnings and failures as lines, a JSON record per job with ``--json``."""

    def __init__(self, *, quiet: bool = False, as_json: bool = False, verbose: bool = False,
                 progress: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.as_json = as_json
        self.verbose = verbose
        self.model = ""
        show = self.console.is_terminal if progress is None else progress
        self._show = show and not quiet
        self._progress: Any = None
        self._files: Any = None
        self._tiles: Any = None
        self._frames: Any = None
        #: when the current job started (a video's frame rate counts from there)
        self._job_t0 = 0.0
        self._download: Any = None
        self._download_bar: Any = None
        if self._show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("ETA"), TimeRemainingColumn())
            self._progress = Progress(*columns, console=self.console, transient=True)

    def __enter__(self) -> CliEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        # rich allows one live display at a time: the download bar runs before the batch's
        for bar in (self._download_bar, self._progress):
            if bar is not None:
                bar.stop()

    # -- events -------------------------------------------------------------------------------------

    def download(self, done: int, total: int | None) -> None:
        if not self._show:
            return
        if self._download_bar is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._download_bar = Progress(TextColumn("weights"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                          console=self.console, transient=True)
            self._download_bar.start()
            self._download = self._download_bar.add_task("weights", total=total)
        self._download_bar.update(self._download, completed=done, total=total)

    def batch_started(self, total: int, model: str) -> None:
        self.model = model
        if self._download_bar is not None:
            self._download_bar.stop()
            self._download_bar = None
        if self._progress is not None:
            self._progress.start()

    def job_started(self, job: Job, index: int, total: int) -> None:
        if self._progress is None:
            return
        if self._files is None:
            self._files = self._progress.add_task("files", total=total)
        self._progress.update(self._files, completed=index, description=f"files ({job.inputs[0].name})")
        if self._tiles is not None:
            self._progress.remove_task(self._tiles)
            self._tiles = None
        if self._frames is not None:
            self._progress.remove_task(self._frames)
            self._frames = None
        self._job_t0 = time.monotonic()

    def tiles(self, done: int, total: int) -> None:
        if self._progress is None or total <= 1:
            return
        if self._tiles is None:
            self._tiles = self._progress.add_task("  tiles", total=total)
        self._progress.update(self._tiles, completed=done, total=total)

    def frames(self, done: int, total: int | None) -> None:
        """A video's frames, with their rate, under the files bar (the ETA column works from the rate)."""
        if self._progress is None:
            return
        elapsed = time.monotonic() - self._job_t0
        rate = done / elapsed if elapsed > 0 else 0.0
        label = f"  frames {rate:.2f} fps" if rate < 10 else f"  frames {rate:.0f} fps"
        if self._frames is None:
            self._frames = self._progress.add_task(label, total=total)
        self._progress.update(self._frames, completed=done, total=total, description=label)

    def warning(self, job: Job | None, message: str) -> None:
        if not self.quiet:
            self._line(f"warning: {message}")

    def run_warning(self, message: str) -> None:
        if not self.quiet:
            self._line(f"warning: {message}")

    def job_finished(self, result: JobResult) -> None:
        if self._progress is not None and self._files is not None:
            self._progress.advance(self._files)
        if result.status == "failed":
            self._line(f"error: {result.error}")
        if self.verbose and result.run is not None:
            for line in result.run.notes:
                self._line(f"{result.job.name}: {line}")
            self._line(f"{result.job.name}: {describe_run(result.run)}")
        if self.verbose and result.status == "skipped":
            self._line(f"skipped {result.job.name}: {result.error}")
        if self.as_json:
            stdout(json.dumps(result_json(result, self.model), ensure_ascii=False))
        elif result.status == "done" and not self.quiet:
            for out in result.job.outputs:
                stdout(str(out))

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False)
        else:
            note(text)


def result_json(result: JobResult, model: str) -> dict[str, Any]:
    """The ``--json`` object for one job (schema: ``docs/json.md``): ``input`` and ``output`` are a path for
    a single image or video, a list for a stereo pair; sizes are ``[width, height]`` of one input and one
    output; a video adds its frames, duration, fps and codecs in and out."""
    job = result.job
    d = result.details
    one = len(job.inputs) == 1
    record = {
        "input": str(job.inputs[0]) if one else [str(p) for p in job.inputs],
        "output": (str(job.outputs[0]) if job.outputs else None) if one else [str(p) for p in job.outputs],
        "status": result.status,
        "error": result.error if result.status != "done" else None,
        "model": model,
        "device": d.get("device"),
        "precision": d.get("precision"),
        "tile_grid": d.get("tile_grid"),
        "tiles": d.get("tiles"),
        "input_size": d.get("input_size"),
        "output_size": d.get("output_size"),
        "input_megapixels": round(result.megapixels, 4),
        "seconds": round(result.seconds, 4),
        "warnings": result.warnings,
    }
    if job.kind == "video":
        record.update(d.get("video") or {"kind": "video"})
    return record


def summary_line(report: BatchReport) -> str:
    """``3 done, 2 skipped (output exists), 1 failed in 4.2 s (1.3 MP/s)``: why inputs were skipped,
    counted by reason; the rate only when something was done; ``interrupted`` after Ctrl-C."""
    skipped = f"{report.count('skipped')} skipped"
    reasons = report.skip_reasons()
    if len(reasons) == 1:
        skipped += f" ({next(iter(reasons))})"
    elif reasons:
        skipped += " (" + ", ".join(f"{n} {kind}" for kind, n in reasons.items()) + ")"
    text = f"{report.count('done')} done, {skipped}, {report.count('failed')} failed in {report.seconds:.1f} s"
    if report.count("done") and report.seconds > 0:
        text += f" ({_rate(report.megapixels / report.seconds)} MP/s)"
    return ("interrupted: " + text + " so far") if report.interrupted else text


def _rate(mp_per_s: float) -> str:
    """Two decimals, or two significant digits below 0.1 MP/s (a batch of thumbnails, or a slow remote
    start), so a rate that is small is never printed as 0.00."""
    return f"{mp_per_s:.2f}" if mp_per_s >= 0.1 else f"{mp_per_s:.2g}"


def subfolder_note(report: BatchReport) -> str | None:
    """``12 images in sub-folders skipped; use -r``, once per run, when a folder run without
    ``--recursive`` left images out."""
    n = report.in_subfolders
    if not n:
        return None
    return f"{n} image{'s' if n != 1 else ''} in sub-folders skipped; use -r"


def finish_batch(report: BatchReport, *, quiet: bool = False) -> int:
    """The closing lines of a batch (compile time, sub-folders left out, summary; none with ``quiet``)
    and its exit code."""
    if not quiet:
        if report.compile_seconds:
            note(f"compiled in {report.compile_seconds:.1f} s (first call per input shape)")
        left_out = subfolder_note(report)
        if left_out:
            note(left_out)
        note(summary_line(report))
    return report.exit_code
