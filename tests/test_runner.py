"""The pipelined runner: stages on their own threads and overlapping, bounded memory, results in job order,
per-stage failures, fail-fast and Ctrl-C semantics, several workers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from nafcli.errors import ImageReadError, ImageWriteError
from nafcli.jobs.plan import Job
from nafcli.jobs.runner import Events, JobEvents, JobOutcome, run_jobs


def _jobs(n: int) -> list[Job]:
    return [Job((Path(f"f{i}.png"),), (Path(f"o{i}.png"),)) for i in range(n)]


class Stages:
    """A job kind that records what happened where; ``fail`` maps a job index to the stage that raises."""

    def __init__(self, fail: dict[int, str] | None = None, interrupt_at: int | None = None) -> None:
        self.fail = fail or {}
        self.interrupt_at = interrupt_at
        self.lock = threading.Lock()
        self.threads: dict[str, set[str]] = {"read": set(), "compute": set(), "write": set()}
        self.written: list[int] = []
        self.computed: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def _note(self, stage: str, job: Job) -> int:
        index = int(job.inputs[0].stem[1:])
        with self.lock:
            self.threads[stage].add(threading.current_thread().name)
        if self.fail.get(index) == stage:
            raise (ImageWriteError if stage == "write" else ImageReadError)(f"{job.inputs[0]}: bad {stage}")
        return index

    def read(self, job: Job, events: JobEvents) -> int:
        index = self._note("read", job)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return index

    def compute(self, job: Job, data: Any, events: JobEvents) -> int:
        index = self._note("compute", job)
        if index == self.interrupt_at:
            raise KeyboardInterrupt
        events.warning(job, f"note {index}")
        with self.lock:
            self.computed.append(index)
        return index * 10

    def write(self, job: Job, data: Any, result: Any, events: JobEvents) -> JobOutcome:
        try:
            index = self._note("write", job)
            assert result == index * 10
            with self.lock:
                self.written.append(index)
            return JobOutcome(megapixels=1.0, details={"index": index})
        finally:
            with self.lock:
                self.in_flight -= 1


class Order(Events):
    def __init__(self) -> None:
        self.finished: list[str] = []
        self.warned: list[str] = []

    def warning(self, job: Job, message: str) -> None:
        self.warned.append(message)

    def job_finished(self, result) -> None:  # noqa: ANN001
        self.finished.append(f"{result.status} {result.job.inputs[0].name}")


def test_stages_run_on_their_own_threads_and_results_come_in_order() -> None:
    stages, events = Stages(), Order()
    report = run_jobs(_jobs(12), stages, events=events)
    assert [r.status for r in report.results] == ["done"] * 12
    assert events.finished == [f"done f{i}.png" for i in range(12)]
    assert stages.threads["read"] == {"nafcli-read"} and stages.threads["write"] == {"nafcli-write"}
    assert stages.threads["compute"] == {threading.current_thread().name}  # one worker: the caller's thread
    assert events.warned == [f"note {i}" for i in range(12)]  # warnings reported with their job, in order
    assert [r.warnings for r in report.results] == [[f"note {i}"] for i in range(12)]


def test_memory_stays_bounded() -> None:
    """At most a reader's item, one queued, one computing, one queued for writing and one being written."""
    stages = Stages()
    run_jobs(_jobs(40), stages, prefetch=1)
    assert len(stages.written) == 40
    assert 2 <= stages.max_in_flight <= 5  # overlapped, but never the whole batch


def test_reading_the_next_job_overlaps_computing() -> None:
    """The reader decodes job 1 while job 0 is computed: compute 0 waits for read 1 (a plain loop would
    deadlock here, so the wait has a timeout and the test checks it did not run out)."""
    read_one = threading.Event()

    class Overlap(Stages):
        def read(self, job: Job, events: JobEvents) -> int:
            index = super().read(job, events)
            if index == 1:
                read_one.set()
            return index

        def compute(self, job: Job, data: Any, events: JobEvents) -> int:
            if data == 0:
                assert read_one.wait(timeout=10), "job 1 was not read while job 0 computed"
            return super().compute(job, data, events)

    report = run_jobs(_jobs(3), Overlap())
    assert [r.status for r in report.results] == ["done"] * 3


def test_a_failure_in_any_stage_is_that_job_only() -> None:
    stages, events = Stages(fail={1: "read", 2: "compute", 3: "write"}), Order()
    report = run_jobs(_jobs(5), stages, events=events)
    assert [r.status for r in report.results] == ["done", "failed", "failed", "failed", "done"]
    assert [r.error for r in report.results[1:4]] == ["f1.png: bad read", "f2.png: bad compute", "f3.png: bad write"]
    assert sorted(stages.written) == [0, 4] and report.exit_code == 1


def test_fail_fast_writes_and_reports_nothing_after_the_failure() -> None:
    stages = Stages(fail={2: "read"})
    report = run_jobs(_jobs(8), stages, fail_fast=True)
    assert [r.status for r in report.results] == ["done", "done", "failed"]
    assert sorted(stages.written) == [0, 1]  # later jobs may have been read, never written


def test_ctrl_c_in_compute_writes_what_was_computed_and_stops() -> None:
    stages = Stages(interrupt_at=3)
    report = run_jobs(_jobs(8), stages)
    assert report.interrupted and report.exit_code == 130
    assert [r.status for r in report.results] == ["done"] * 3
    assert sorted(stages.written) == [0, 1, 2]


def test_several_workers_share_the_jobs_and_report_in_order() -> None:
    shared = Stages()  # read/write stages are the first worker's; count computes over both

    class Counted(Stages):
        def compute(self, job: Job, data: Any, events: JobEvents) -> int:
            out = super().compute(job, data, events)
            with shared.lock:
                shared.computed.append(data)
                shared.threads["compute"].add(threading.current_thread().name)
            threading.Event().wait(0.01)  # let the other worker take the next job
            return out

    workers = [Counted(), Counted()]
    events = Order()
    report = run_jobs(_jobs(20), workers, events=events)
    assert report.exit_code == 0
    assert events.finished == [f"done f{i}.png" for i in range(20)]
    assert sorted(shared.computed) == list(range(20))  # every job computed exactly once
    assert len(shared.threads["compute"]) == 2  # on two threads
    assert sorted(workers[0].written) == list(range(20))  # one writer


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single(n: int) -> None:
    report = run_jobs(_jobs(n), Stages())
    assert len(report.results) == n and report.exit_code == 0


def test_a_failing_events_callback_stops_the_batch_after_writing_what_was_computed() -> None:
    """The CLI's JSON record hitting a closed stdout raises BrokenPipeError inside job_finished: the batch
    stops, the writer finishes every job already computed (none left half-done when the process exits),
    then the error propagates for the CLI to map."""

    class ClosedPipe(Events):
        def job_finished(self, result) -> None:  # noqa: ANN001
            raise BrokenPipeError(32, "Broken pipe")

    stages = Stages()
    with pytest.raises(BrokenPipeError):
        run_jobs(_jobs(10), stages, events=ClosedPipe())
    assert stages.computed and sorted(stages.written) == sorted(stages.computed)
    assert len(stages.computed) < 10
