"""Running jobs: each job's outcome is recorded and the batch goes on past per-file failures (unless
``fail_fast``); Ctrl-C ends it with the results so far. Progress and failures are reported through an
:class:`Events` object the caller gives; nothing here prints."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import NafcliError
from ..inference.restorer import RunInfo
from .plan import Job


@dataclass
class JobResult:
    """What became of one job: ``done``, ``skipped`` or ``failed`` (with the reason)."""

    job: Job
    status: str
    error: str | None = None
    seconds: float = 0.0
    #: input megapixels processed (for the MP/s figure)
    megapixels: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: whatever the job function wants to report (device, precision, tile grid, ...)
    details: dict[str, Any] = field(default_factory=dict)
    #: how the model ran (None for jobs that did not run)
    run: RunInfo | None = None


@dataclass
class BatchReport:
    """What became of a batch: one result per job (in order), its duration, and whether Ctrl-C ended it."""

    results: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    #: the model that ran (registry id or weights file), or what was asked for when nothing ran
    model: str = ""

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def megapixels(self) -> float:
        return sum(r.megapixels for r in self.results if r.status == "done")

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling (``--compile``), over every job."""
        return sum(r.run.compile_seconds for r in self.results if r.run is not None)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.count("failed") else 0


class Events:
    """Callbacks from the workflows and :func:`run_jobs`; the default does nothing. The CLI subclasses it
    to draw progress and print one line per failure: nothing below the CLI prints."""

    def download(self, done: int, total: int | None) -> None:
        """Bytes of the model's weights downloaded so far (first use of a registry model)."""

    def batch_started(self, total: int, model: str) -> None:
        """The jobs are planned (and the model loaded, if any job runs): ``total`` jobs with ``model``."""

    def job_started(self, job: Job, index: int, total: int) -> None:
        """``index`` counts from 0."""

    def tiles(self, done: int, total: int) -> None:
        """Tiles done within the current image."""

    def warning(self, job: Job, message: str) -> None:
        """Something the user should know that did not stop the job."""

    def job_finished(self, result: JobResult) -> None:
        """Called for every job, skipped and failed included."""


@dataclass
class JobOutcome:
    """What a job function returns on success."""

    megapixels: float = 0.0
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    run: RunInfo | None = None


class JobFunction(Protocol):
    """Does the work of one job; raises :class:`~nafcli.errors.NafcliError` on a per-file failure."""

    def __call__(self, job: Job, events: Events) -> JobOutcome: ...


def run_jobs(
    jobs: Sequence[Job],
    work: JobFunction,
    *,
    events: Events | None = None,
    fail_fast: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> BatchReport:
    """Run ``work`` on each job. Per-file errors become ``failed`` results; ``KeyboardInterrupt`` ends
    the batch with ``interrupted`` set (outputs are written atomically, so nothing half-written stays).
    Unexpected exceptions are recorded as failures too (named as such): one bug on one odd file must
    not cost the user the other thousand."""
    ev = events or Events()
    report = BatchReport()
    start = clock()
    total = len(jobs)
    for index, job in enumerate(jobs):
        ev.job_started(job, index, total)
        if job.problem is not None:
            result = JobResult(job, "failed", error=job.problem)
        elif job.skip is not None:
            result = JobResult(job, "skipped", error=job.skip)
        else:
            t0 = clock()
            try:
                outcome = work(job, ev)
            except KeyboardInterrupt:
                report.interrupted = True
                break
            except NafcliError as e:
                result = JobResult(job, "failed", error=_name_file(job, str(e)), seconds=clock() - t0)
            except MemoryError:
                result = JobResult(job, "failed", error=f"{job.name}: out of memory (try --tile)",
                                   seconds=clock() - t0)
            except Exception as e:  # noqa: BLE001 - see docstring
                first = str(e).splitlines()[0] if str(e) else ""
                result = JobResult(job, "failed", error=f"{job.name}: unexpected {type(e).__name__}: {first}",
                                   seconds=clock() - t0)
            else:
                result = JobResult(job, "done", seconds=clock() - t0, megapixels=outcome.megapixels,
                                   warnings=outcome.warnings, details=outcome.details, run=outcome.run)
        report.results.append(result)
        ev.job_finished(result)
        if fail_fast and result.status == "failed":
            break
    report.seconds = clock() - start
    return report


def _name_file(job: Job, message: str) -> str:
    """Failure lines must name the file; most messages already do."""
    if any(str(p) in message for p in job.inputs + job.outputs):
        return message
    return f"{job.name}: {message}"
