"""What a job kind is and what it reports: the three stages of :class:`Work` (read, compute, write) or a
:class:`JobFunction` done in one call, and the :class:`Events` a run reports progress, warnings and
results through (:class:`JobEvents` for one job's stages). Apart from :mod:`.runner`, which runs them,
because every job kind (photos, videos) and every way of running them (local, Ray) uses these and
nothing of the runner's threads and queues.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .plan import Job
    from .report import JobOutcome, JobResult


class Events:
    """Callbacks from the workflows and :func:`run_jobs`; the default does nothing. The CLI subclasses it
    to draw progress and print one line per failure: nothing below the CLI prints.

    ``job_finished`` and ``warning`` come from the calling thread, in job order; ``job_started``,
    ``tiles`` and ``frames`` from the thread that runs the network (the calling thread unless there are
    several workers).
    """

    def download(self, done: int, total: int | None) -> None:
        """Bytes of the model's weights downloaded so far (first use of a registry model)."""

    def batch_started(self, total: int, model: str) -> None:
        """The jobs are planned (and the model loaded, if any job runs): ``total`` jobs with ``model``."""

    def job_started(self, job: Job, index: int, total: int) -> None:
        """``index`` counts from 0."""

    def tiles(self, done: int, total: int) -> None:
        """Tiles done within the current image."""

    def frames(self, done: int, total: int | None) -> None:
        """Frames done within the current video (``total``: None when the file does not say)."""

    def warning(self, job: Job | None, message: str) -> None:
        """Something the user should know that did not stop the job (``job`` None: about the whole run,
        such as weights trained for another task)."""

    def run_warning(self, message: str) -> None:
        """Something the user should know about the whole run (said once, before the first job), e.g. a
        precision this device only emulates."""

    def job_finished(self, result: JobResult) -> None:
        """Called for every job, skipped and failed included."""


class JobEvents:
    """What a stage may report while it works on one job: warnings (kept with the job and reported with
    its result, in order) and tile and frame progress (passed on at once)."""

    def __init__(self, events: Events, stop: threading.Event | None = None) -> None:
        self._events = events
        self._stop = stop
        self.warnings: list[str] = []

    @property
    def cancelled(self) -> bool:
        """Whether the run is stopping (Ctrl-C): a stage that takes long (a video) and runs on a worker
        thread, which Ctrl-C does not reach, should stop at its next step and clean up."""
        return self._stop is not None and self._stop.is_set()

    def warning(self, job: Job, message: str) -> None:
        self.warnings.append(message)

    def tiles(self, done: int, total: int) -> None:
        self._events.tiles(done, total)

    def frames(self, done: int, total: int | None) -> None:
        self._events.frames(done, total)


class Work(Protocol):
    """A job kind, in three stages that may run on different threads."""

    def read(self, job: Job, events: JobEvents) -> Any:
        """Decode the job's inputs (the reader thread)."""
        ...

    def compute(self, job: Job, data: Any, events: JobEvents) -> Any:
        """Run the network on them (a worker: the calling thread, or one thread per device)."""
        ...

    def write(self, job: Job, data: Any, result: Any, events: JobEvents) -> JobOutcome:
        """Encode and write the outputs atomically (the writer thread)."""
        ...


class JobFunction(Protocol):
    """A job done in one call (read, compute and write); raises :class:`~nafcli.errors.NafcliError` on a
    per-file failure."""

    def __call__(self, job: Job, events: Events) -> JobOutcome: ...


class WholeJob:
    """A :class:`JobFunction` as a :class:`Work` whose compute stage does everything."""

    def __init__(self, function: JobFunction) -> None:
        self.function = function

    def read(self, job: Job, events: JobEvents) -> Any:
        return None

    def compute(self, job: Job, data: Any, events: JobEvents) -> Any:
        return self.function(job, events)  # type: ignore[arg-type]

    def write(self, job: Job, data: Any, result: Any, events: JobEvents) -> JobOutcome:
        return result
