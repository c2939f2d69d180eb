"""Running jobs: every job's outcome is recorded and the batch goes on past per-file failures (unless
``fail_fast``); Ctrl-C ends it with the results so far. Progress and failures are reported through an
:class:`Events` object the caller gives; nothing here prints.

A job kind does its work in three stages (:class:`Work`): ``read`` (decode the inputs), ``compute`` (the
network) and ``write`` (encode and write the outputs atomically). :func:`run_jobs` overlaps them: a reader
thread decodes the next inputs and a writer thread writes finished ones while the device computes, with
bounded queues between them, so the device does not wait for the disk and memory stays bounded (at most
``prefetch`` decoded inputs and ``prefetch`` results waiting). With one worker the network runs on the
calling thread, so Ctrl-C interrupts it at once, as a plain loop would; with several (one per device) each
runs on a thread of its own. Results are reported in job order whatever the order they finish in, and a
job after a ``fail_fast`` failure or an interruption is never written.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import NafcliError
from .plan import Job
from .report import BatchReport, JobOutcome, JobResult
from .stages import Events, JobEvents, JobFunction, WholeJob, Work

__all__ = [
    "BatchReport", "Events", "JobEvents", "JobFunction", "JobOutcome", "JobResult", "WholeJob", "Work", "run_jobs",
]


@dataclass
class _Item:
    """One runnable job on its way through the stages."""

    index: int
    job: Job
    events: JobEvents
    #: when its read began
    started: float
    data: Any = None
    result: Any = None
    outcome: JobOutcome | None = None
    error: BaseException | None = None
    #: seconds spent in the stages (not waiting in queues between them)
    busy: float = 0.0


_DONE = object()  # end of a queue


def run_jobs(
    jobs: Sequence[Job],
    work: Work | JobFunction | Sequence[Work],
    *,
    events: Events | None = None,
    fail_fast: bool = False,
    prefetch: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> BatchReport:
    """Run every job through ``work`` (a :class:`Work`, a :class:`JobFunction`, or one :class:`Work` per
    device, whose ``compute`` stages then run in parallel; their ``read``/``write`` stages must be alike).

    Per-file errors become ``failed`` results; ``KeyboardInterrupt`` ends the batch with ``interrupted``
    set (outputs are written atomically, and the writer finishes the file it is writing, so nothing
    half-written stays). Unexpected exceptions are recorded as failures too (named as such): one bug on
    one odd file must not cost the user the other thousand.
    """
    return _Run(jobs, work, events or Events(), fail_fast, max(1, prefetch), clock).run()


def _as_work(work: Work | JobFunction) -> Work:
    return work if hasattr(work, "compute") else WholeJob(work)  # type: ignore[arg-type,return-value]


class _Run:
    """The state of one :func:`run_jobs` call: three queues, a reader, a writer, the workers, and the
    reporting of results in job order on the calling thread."""

    def __init__(self, jobs: Sequence[Job], work: Any, events: Events, fail_fast: bool, prefetch: int,
                 clock: Callable[[], float]) -> None:
        self.jobs = list(jobs)
        self.workers = [_as_work(w) for w in work] if isinstance(work, Sequence) else [_as_work(work)]
        self.events = events
        self.fail_fast = fail_fast
        self.clock = clock
        #: set on Ctrl-C: nothing more is started or written
        self.stop = threading.Event()
        #: the first job that failed under ``fail_fast``: no later job is computed, written or reported
        self.stop_after: int | None = None
        self.read_q: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self.write_q: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self.done_q: queue.Queue[_Item] = queue.Queue()
        self.finished: dict[int, _Item] = {}
        self.report = BatchReport()
        self.next = 0  # the next job to report
        self.writes_ended = False
        self._writer_thread: threading.Thread | None = None
        self._ended: list[threading.Event] = []

    def _cancelled(self, index: int) -> bool:
        """Whether a job is not to be started: after Ctrl-C, or after a ``fail_fast`` failure."""
        return self.stop.is_set() or self._after_failure(index)

    def _after_failure(self, index: int) -> bool:
        return self.stop_after is not None and index > self.stop_after

    def _failed(self, item: _Item) -> None:
        if self.fail_fast and (self.stop_after is None or item.index < self.stop_after):
            self.stop_after = item.index

    # -- the stages -----------------------------------------------------------------------------------

    def _reader(self) -> None:
        stage = self.workers[0]
        for index, job in enumerate(self.jobs):
            if self._cancelled(index):
                break
            if not job.runnable:
                continue
            item = _Item(index, job, JobEvents(self.events, self.stop), self.clock())
            try:
                item.data = stage.read(job, item.events)
            except BaseException as e:  # noqa: BLE001 - recorded with the job, reported in order
                item.error = e
                self._failed(item)
            item.busy += self.clock() - item.started
            self._put(self.read_q, item)
        for _ in self.workers:
            self._put(self.read_q, _DONE)

    def _compute(self, stage: Work, reporting: bool) -> None:
        """Take decoded jobs until the reader is done; on the calling thread, report as results come."""
        while True:
            item = self._get(self.read_q)
            if item is _DONE:
                return
            if item.error is None and not self._cancelled(item.index):
                self.events.job_started(item.job, item.index, len(self.jobs))
                t0 = self.clock()
                try:
                    item.result = stage.compute(item.job, item.data, item.events)
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # noqa: BLE001 - recorded with the job, reported in order
                    item.error = e
                    self._failed(item)
                item.busy += self.clock() - t0
            self._put(self.write_q, item)
            if reporting:
                self._drain(block=False)

    def _compute_thread(self, stage: Work, ended: threading.Event) -> None:
        try:
            self._compute(stage, False)
        finally:
            ended.set()

    def _writer(self) -> None:
        stage = self.workers[0]
        while True:
            item = self._get(self.write_q, forever=True)
            if item is _DONE:
                return
            # what was computed before Ctrl-C is still written (at most a queue's worth): only jobs
            # after a fail_fast failure are dropped
            if item.error is None and self._after_failure(item.index):
                item.error = _Cancelled()
            elif item.error is None:
                t0 = self.clock()
                try:
                    item.outcome = stage.write(item.job, item.data, item.result, item.events)
                except BaseException as e:  # noqa: BLE001 - recorded with the job, reported in order
                    item.error = e
                    self._failed(item)
                item.busy += self.clock() - t0
            item.data = item.result = None
            self.done_q.put(item)

    def _end_writes(self) -> None:
        if not self.writes_ended:
            self.writes_ended = True
            self._put(self.write_q, _DONE)

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        """Put, giving up on a job (not on the end marker) once Ctrl-C stopped the run."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.stop.is_set() and item is not _DONE:
                    return

    def _get(self, q: queue.Queue[Any], forever: bool = False) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set() and not forever:
                    return _DONE

    # -- orchestration --------------------------------------------------------------------------------

    def run(self) -> BatchReport:
        start = self.clock()
        reader = threading.Thread(target=self._reader, name="nafcli-read", daemon=True)
        writer = self._writer_thread = threading.Thread(target=self._writer, name="nafcli-write", daemon=True)
        #: set by each worker thread as it ends: Thread.join interrupted by Ctrl-C can leave a thread that
        #: still runs marked as ended (Python 3.11), so the wait after Ctrl-C does not rely on it
        self._ended = [threading.Event() for _ in self.workers] if len(self.workers) > 1 else []
        computes = [
            threading.Thread(target=self._compute_thread, args=(w, e), name=f"nafcli-compute-{i}", daemon=True)
            for i, (w, e) in enumerate(zip(self.workers, self._ended, strict=False))  # none with one worker
        ]
        for t in (reader, writer, *computes):
            t.start()
        try:
            if computes:
                for t in computes:
                    while t.is_alive():
                        t.join(timeout=0.1)
                        self._drain(block=False)
            else:
                self._compute(self.workers[0], reporting=True)
            self._end_writes()
            self._drain(block=True)
            # nothing of the run is left running when it returns (a daemon thread still inside a native
            # library at interpreter exit can abort the process)
            writer.join()
            reader.join()
        except KeyboardInterrupt:
            self.report.interrupted = True
            self._stop_writing()
            self._drain(block=False)
        except BaseException:
            # a failure outside the jobs (an Events callback: stdout closed under --json) ends the batch
            # as Ctrl-C does, then propagates: what was computed is written, nothing is left half-written
            self._stop_writing()
            raise
        finally:
            self.stop.set()
        self.report.seconds = self.clock() - start
        return self.report

    def _stop_writing(self) -> None:
        """Start nothing more; let the writer finish what was computed (or remove its temporary file) and
        the workers on threads finish their step (a video removes its partial file)."""
        self.stop.set()
        self._end_writes()
        if self._writer_thread is not None:
            self._writer_thread.join()
        for ended in self._ended:
            ended.wait()

    def _drain(self, block: bool) -> None:
        """Report the jobs whose turn has come, in order: skipped and refused ones at once, runnable ones
        once finished (waiting for them when ``block``), until a ``fail_fast`` failure or a cancelled job."""
        while self.next < len(self.jobs):
            index, job = self.next, self.jobs[self.next]
            if job.runnable:
                while index not in self.finished:
                    try:
                        item = self.done_q.get(timeout=0.1 if block else 0)
                    except queue.Empty:
                        if block:
                            continue
                        return
                    self.finished[item.index] = item
                item = self.finished.pop(index)
                if isinstance(item.error, _Cancelled):
                    self.next = len(self.jobs)
                    return
                if isinstance(item.error, KeyboardInterrupt):  # raised inside a stage: an interruption
                    self.next = len(self.jobs)
                    raise KeyboardInterrupt
                result = self._result(item)
            else:
                self.events.job_started(job, index, len(self.jobs))
                result = JobResult.planned(job)
            self.next += 1
            if deliver(result, self.report, self.events, self.fail_fast):
                self.stop_after = index if self.stop_after is None else min(self.stop_after, index)
                self.next = len(self.jobs)
                return

    def _result(self, item: _Item) -> JobResult:
        job, seconds = item.job, item.busy
        e = item.error
        if e is None and item.outcome is not None:
            o = item.outcome
            warnings = item.events.warnings + [w for w in o.warnings if w not in item.events.warnings]
            return JobResult(job, "done", seconds=seconds, megapixels=o.megapixels, warnings=warnings,
                             details=o.details, run=o.run)
        if isinstance(e, NafcliError):
            error = _name_file(job, str(e))
        elif isinstance(e, MemoryError):
            error = f"{job.name}: out of memory (try --tile)"
        else:
            first = str(e).splitlines()[0] if str(e) else ""
            error = f"{job.name}: unexpected {type(e).__name__}: {first}"
        return JobResult(job, "failed", error=error, seconds=seconds, warnings=list(item.events.warnings))


def deliver(result: JobResult, report: BatchReport, events: Events, fail_fast: bool) -> bool:
    """Record a job's result, in its turn, and tell ``events``; True when ``fail_fast`` ends the batch
    here. The one way results are reported, for local runs and for those on Ray (:mod:`.cluster`): the
    job's warnings first, then the result."""
    for message in result.warnings:
        events.warning(result.job, message)
    report.results.append(result)
    events.job_finished(result)
    return fail_fast and result.status == "failed"


class _Cancelled(Exception):
    """A job dropped because the run stopped before it was written."""


def _name_file(job: Job, message: str) -> str:
    """Failure lines must name the file; most messages already do."""
    if any(str(p) in message for p in job.inputs + job.outputs):
        return message
    return f"{job.name}: {message}"
