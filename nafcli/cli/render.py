"""How a batch looks on a terminal: Rich progress, one line per failure, JSON lines, the summary.

Kept apart from the commands so that denoise, deblur and sr draw their batches the same way. stdout gets
data only (output paths, or JSON with ``--json``); everything else goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..batch import BatchReport, Events, Job, JobResult


class CliEvents(Events):
    """Draws progress (files, and tiles of the current image, with ETA) when stderr is a terminal."""

    def __init__(self, *, quiet: bool, as_json: bool, model: str, progress: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.as_json = as_json
        self.model = model
        show = self.console.is_terminal if progress is None else progress
        self._progress: Any = None
        self._files: Any = None
        self._tiles: Any = None
        if show and not quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )

    # -- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> CliEvents:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    # -- Events -------------------------------------------------------------------------------------

    def job_started(self, job: Job, index: int, total: int) -> None:
        if self._progress is None:
            return
        if self._files is None:
            self._files = self._progress.add_task("files", total=total)
        self._progress.update(self._files, completed=index, description=f"files ({job.inputs[0].name})")
        if self._tiles is not None:
            self._progress.remove_task(self._tiles)
            self._tiles = None

    def tiles(self, done: int, total: int) -> None:
        if self._progress is None or total <= 1:
            return
        if self._tiles is None:
            self._tiles = self._progress.add_task("  tiles", total=total)
        self._progress.update(self._tiles, completed=done, total=total)

    def warning(self, job: Job, message: str) -> None:
        if not self.quiet:
            self._line(f"warning: {message}")

    def job_finished(self, result: JobResult) -> None:
        if self._progress is not None and self._files is not None:
            self._progress.advance(self._files)
        if result.status == "failed":
            self._line(f"error: {result.error}")
        if self.as_json:
            _stdout(json.dumps(result_json(result, self.model), ensure_ascii=False))
        elif result.status == "done":
            for out in result.job.outputs:
                _stdout(str(out))

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False)
        else:
            print(text, file=sys.stderr, flush=True)


def _stdout(text: str) -> None:
    print(text, flush=True)


def result_json(result: JobResult, model: str) -> dict[str, Any]:
    """The ``--json`` object for one input (a stereo job lists both inputs and outputs)."""
    job = result.job
    d = result.details
    one = len(job.inputs) == 1
    return {
        "input": str(job.inputs[0]) if one else [str(p) for p in job.inputs],
        "output": (str(job.outputs[0]) if job.outputs else None) if one else [str(p) for p in job.outputs],
        "status": result.status,
        "error": result.error if result.status != "done" else None,
        "model": model,
        "device": d.get("device"),
        "precision": d.get("precision"),
        "tile_grid": d.get("tile_grid"),
        "tiles": d.get("tiles"),
        "size": d.get("size"),
        "megapixels": round(result.megapixels, 4),
        "seconds": round(result.seconds, 4),
        "warnings": result.warnings,
    }


def summary_line(report: BatchReport) -> str:
    """``3 done, 1 skipped, 1 failed in 4.2 s (1.3 MP/s)``, plus ``interrupted`` after Ctrl-C."""
    rate = report.megapixels / report.seconds if report.seconds > 0 else 0.0
    text = (
        f"{report.count('done')} done, {report.count('skipped')} skipped, {report.count('failed')} failed "
        f"in {report.seconds:.1f} s ({rate:.2f} MP/s)"
    )
    return ("interrupted: " + text + " so far") if report.interrupted else text
