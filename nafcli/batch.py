"""Inputs -> jobs -> results, for folders of thousands of photos.

Three steps, each usable alone:

* :func:`discover` turns what the user typed (files, directories, glob patterns) into :class:`Source`
  items, recognising images by content and skipping hidden and system files.
* :func:`plan` gives each source its output path (``-o FILE``, ``-o DIR`` with the input tree mirrored, or
  beside the input), refuses to overwrite an input, and marks jobs whose output already exists as skipped
  (so an interrupted batch resumes).
* :func:`run_jobs` runs any job function over the jobs: a failure is recorded and the batch goes on
  (unless ``fail_fast``), Ctrl-C stops it with the results so far.

Jobs hold a tuple of inputs and a tuple of outputs, so the stereo command can plan pairs and reuse
:func:`run_jobs` unchanged. Nothing here prints: the caller passes an :class:`Events` object.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NafcliError, UsageError
from .imageio import EXTENSIONS, WRITABLE, can_hold, read_image, sniff_file, write_image

#: default output suffix per task
SUFFIXES = {"denoise": "_denoised", "deblur": "_deblurred", "sr": "_sr"}

#: extensions that suggest an image; a file with one is tried (and fails cleanly if it is not one)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif"})

#: files that operating systems scatter in photo folders
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
SYSTEM_DIRS = frozenset({"__macosx", "$recycle.bin", "system volume information", "@eadir"})

#: sniffed format -> the format nafcli writes by default for it (None: not writable, use PNG)
_NATIVE = {"png": "png", "jpeg": "jpg", "webp": "webp", "tiff": "tiff", "bmp": "bmp", "gif": None}


def default_output(path: Path, task: str, ext: str = ".png") -> Path:
    """``photo.jpg`` -> ``photo_denoised.png`` beside the input."""
    return path.with_name(f"{path.stem}{SUFFIXES[task]}{ext}")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def is_hidden_or_system(path: Path) -> bool:
    """``.DS_Store``, ``._photo.jpg`` (macOS resource forks), ``Thumbs.db`` and other dot files."""
    name = path.name
    return name.startswith(".") or name.lower() in SYSTEM_FILES


# --- discovery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One input file and the folder its output path is mirrored from."""

    path: Path
    #: the directory the user named (outputs mirror ``path`` relative to it); for files, their parent
    root: Path
    #: a reason this input cannot be used (missing file, a pattern that matched nothing)
    problem: str | None = None


def discover(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    exclude_suffix: str | None = None,
    exclude_dirs: Sequence[Path] = (),
) -> list[Source]:
    """Expand files, directories and glob patterns into sources, in a stable (sorted) order.

    Files named explicitly are always tried, whatever they hold (a bad one then fails with a reason).
    In directories, a file is taken when its content is an image or its extension says it should be
    one; hidden and system files are skipped, and so are earlier outputs (stems ending in
    ``exclude_suffix``) and ``exclude_dirs`` (an output folder inside the input folder), so a re-run
    over the same folder does not restore its own results.
    """
    sources: list[Source] = []
    seen: set[Path] = set()
    excluded = [d.resolve() for d in exclude_dirs]

    def add(src: Source) -> None:
        key = src.path.resolve() if src.problem is None else src.path
        if key not in seen:
            seen.add(key)
            sources.append(src)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            for f in _walk(path, recursive, exclude_suffix, excluded):
                add(Source(f, path))
        elif path.exists():
            add(Source(path, path.parent))
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file() and not is_hidden_or_system(Path(m))]
            files = [f for f in files if _looks_like_image(f)]
            if not files:
                add(Source(path, path.parent, problem=f"{text}: no images match this pattern"))
            base = _glob_base(text)
            for f in files:
                add(Source(f, base))
        else:
            add(Source(path, path.parent, problem=f"{text}: no such file or directory"))
    return sources


def _glob_base(pattern: str) -> Path:
    """The directory part of a pattern before its first wildcard (mirroring starts there)."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _looks_like_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS or sniff_file(path) is not None


def _walk(
    root: Path, recursive: bool, exclude_suffix: str | None, excluded: list[Path],
    visited: set[Path] | None = None,
) -> list[Path]:
    found: list[Path] = []
    visited = set() if visited is None else visited
    real = root.resolve()
    if real in visited:  # a symlink loop: each folder once
        return found
    visited.add(real)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        p = Path(entry.path)
        if is_hidden_or_system(p):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            if recursive and entry.name.lower() not in SYSTEM_DIRS and p.resolve() not in excluded:
                found.extend(_walk(p, recursive, exclude_suffix, excluded, visited))
            continue
        if exclude_suffix and p.stem.endswith(exclude_suffix):
            continue
        if _looks_like_image(p):
            found.append(p)
    return found


# --- planning --------------------------------------------------------------------------------------


@dataclass
class Job:
    """Inputs to read and outputs to write together: one of each for mono models, two for stereo."""

    inputs: tuple[Path, ...]
    outputs: tuple[Path, ...]
    #: set at planning time: the job is not run and reported as skipped with this reason
    skip: str | None = None
    #: set at planning time: the job is not run and reported as failed with this reason
    problem: str | None = None

    @property
    def name(self) -> str:
        return " + ".join(str(p) for p in self.inputs)


@dataclass(frozen=True)
class OutputSpec:
    """How outputs are named: ``-o``, ``--suffix``, ``--format``, ``--overwrite``."""

    task: str
    output: Path | None = None
    suffix: str | None = None
    fmt: str | None = None
    overwrite: bool = False

    @property
    def effective_suffix(self) -> str:
        return SUFFIXES[self.task] if self.suffix is None else self.suffix


def output_format(path: Path, requested: str | None) -> str:
    """``--format`` if given, else the input's own format when nafcli can write it losslessly enough
    (JPEG stays JPEG), else PNG (GIF, a BMP with alpha, anything unknown)."""
    if requested:
        return "jpg" if requested in ("jpeg", "jpg") else ("tiff" if requested == "tif" else requested)
    fmt = _NATIVE.get(sniff_file(path) or "")
    if fmt is None:
        return "png"
    if fmt == "bmp" and _has_alpha(path):
        return "png"
    if not can_hold(fmt, sixteen_bit=False, alpha=False):
        return "png"
    return fmt


def _has_alpha(path: Path) -> bool:
    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as im:
            return "A" in im.mode or "transparency" in im.info
    except Exception:  # noqa: BLE001 - the reader will report the real problem
        return False


def plan(sources: Sequence[Source], spec: OutputSpec) -> list[Job]:
    """One job per source, with its output path, skip reason or problem."""
    out = spec.output
    if out is not None and len(sources) > 1 and out.suffix.lower() in WRITABLE and not out.is_dir():
        raise UsageError(f"-o {out}: {len(sources)} inputs need an output folder, not a file name")
    single_file = (
        out is not None and len(sources) == 1 and not out.is_dir() and out.suffix.lower() in WRITABLE
    )
    if out is not None and not single_file and out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    inputs = {s.path.resolve() for s in sources if s.problem is None}
    claimed: dict[Path, Path] = {}
    jobs: list[Job] = []
    for src in sources:
        if src.problem is not None:
            jobs.append(Job((src.path,), (), problem=src.problem))
            continue
        dst = out if single_file and out is not None else output_path(src, spec)
        jobs.append(_check_output(src.path, dst, spec, inputs, claimed))
    return jobs


def output_path(src: Source, spec: OutputSpec) -> Path:
    """Where ``src``'s result goes when ``-o`` is a folder or absent: the input tree mirrored under
    ``-o`` (or beside the input), ``NAME<suffix>.<format>``."""
    ext = EXTENSIONS[output_format(src.path, spec.fmt)]
    name = f"{src.path.stem}{spec.effective_suffix}{ext}"
    if spec.output is None:
        return src.path.with_name(name)
    try:
        rel = src.path.parent.resolve().relative_to(src.root.resolve())
    except ValueError:
        rel = Path()
    return spec.output / rel / name


def plan_pairs(pairs: Sequence[tuple[Source, Source]], spec: OutputSpec) -> list[Job]:
    """Stereo: one job per (left, right) pair, two outputs named as :func:`plan` names them, with the
    same rules (never an input, no two jobs on one output, skip when both exist unless ``overwrite``).
    ``-o`` is always a folder here."""
    inputs = {s.path.resolve() for pair in pairs for s in pair if s.problem is None}
    claimed: dict[Path, Path] = {}
    jobs: list[Job] = []
    for left, right in pairs:
        problem = left.problem or right.problem
        if problem is not None:
            jobs.append(Job((left.path, right.path), (), problem=problem))
            continue
        checks = [_check_output(s.path, output_path(s, spec), spec, inputs, claimed) for s in (left, right)]
        job = Job((left.path, right.path), tuple(c.outputs[0] for c in checks))
        job.problem = next((c.problem for c in checks if c.problem), None)
        if job.problem is None and all(c.skip for c in checks):
            job.skip = "; ".join(c.skip for c in checks if c.skip)
        jobs.append(job)
    return jobs


def _check_output(
    src: Path, dst: Path, spec: OutputSpec, inputs: set[Path], claimed: dict[Path, Path]
) -> Job:
    key = dst.resolve()
    if key in inputs or same_file(src, dst):
        return Job((src,), (dst,), problem=f"{src}: output {dst} would overwrite an input; "
                   "use another --suffix, --format or -o")
    if key in claimed:
        return Job((src,), (dst,), problem=f"{src}: output {dst} is also the output of {claimed[key]}; "
                   "use --format or -o to tell them apart")
    claimed[key] = src
    if dst.exists() and not spec.overwrite:
        return Job((src,), (dst,), skip=f"{dst} exists (use --overwrite to replace it)")
    return Job((src,), (dst,))


# --- running ---------------------------------------------------------------------------------------


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


@dataclass
class BatchReport:
    results: list[JobResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def megapixels(self) -> float:
        return sum(r.megapixels for r in self.results if r.status == "done")

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.count("failed") else 0


class Events:
    """Callbacks from :func:`run_jobs`; the default does nothing. The CLI subclasses it to draw
    progress and print one line per failure."""

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


#: a job function: does the work of one job, raises NafcliError on a per-file failure
JobFunction = Callable[[Job, Events], JobOutcome]


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
                                   warnings=outcome.warnings, details=outcome.details)
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


# --- the mono restore job --------------------------------------------------------------------------


def restore_job(
    restorer: Any, *, max_pixels: int | None = None, quality: int | None = None
) -> JobFunction:
    """The job function for denoise/deblur: read, restore (tiles reported), write atomically."""

    def work(job: Job, events: Events) -> JobOutcome:
        src, dst = job.inputs[0], job.outputs[0]
        image = read_image(src, max_pixels=max_pixels)
        warnings = list(image.info.pop("warnings", []))
        for w in warnings:
            events.warning(job, w)
        result = restorer.restore_image(image, events.tiles)
        for w in write_image(dst, result, quality=quality):
            warnings.append(w)
            events.warning(job, w)
        run = restorer.last_run
        details = {
            "device": str(run.device), "precision": run.precision, "tiles": run.tiles,
            "tile_grid": list(run.grid), "tile_size": run.tile_size,
            "size": [image.width, image.height],
        }
        return JobOutcome(megapixels=image.width * image.height / 1e6, warnings=warnings, details=details)

    return work


def restore_file(
    restorer: Any, src: Path, dst: Path | None, *, task: str, progress: Any = None
) -> Path:
    """Read ``src``, restore it, write ``dst`` (default beside the input). Returns the path written."""
    out = dst if dst is not None else default_output(src, task, EXTENSIONS[output_format(src, None)])
    if same_file(src, out):
        raise UsageError(f"{out}: refusing to overwrite the input; choose another --output")
    image = read_image(src)
    image.info.pop("warnings", None)
    result = restorer.restore_image(image, progress)
    write_image(out, result)
    return out
