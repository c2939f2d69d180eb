"""What became of a batch: one result per job, in order, and the figures the summary is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    @classmethod
    def planned(cls, job: Job) -> JobResult:
        """The result planning decided for a job that does not run: failed (refused) or skipped, with why."""
        if job.problem is not None:
            return cls(job, "failed", error=job.problem)
        return cls(job, "skipped", error=job.skip)


@dataclass
class BatchReport:
    """What became of a batch: one result per job (in order), its duration, and whether Ctrl-C ended it."""

    results: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    #: the model that ran (registry id or weights file), or what was asked for when nothing ran
    model: str = ""
    #: images in sub-folders that a run without ``--recursive`` left out (see :class:`~.discover.Sources`)
    in_subfolders: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def skip_reasons(self) -> dict[str, int]:
        """Skipped jobs by why (``{"output exists": 3}``), most frequent first."""
        counts: dict[str, int] = {}
        for r in self.results:
            if r.status == "skipped":
                kind = r.job.skip_kind or "skipped"
                counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

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


@dataclass
class JobOutcome:
    """What a job returns on success."""

    megapixels: float = 0.0
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    run: RunInfo | None = None
