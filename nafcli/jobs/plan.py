"""Inputs -> jobs: each job's output paths, and the jobs to skip or refuse before anything runs.

A job holds a tuple of inputs and a tuple of outputs: one of each for a photo, two for a stereo pair, so
one planner and one runner serve every command. The rules (names, collisions) are :mod:`.names`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageReadError, UsageError
from ..imaging.formats import WRITABLE
from .discover import Source
from .names import (
    DEFAULT_NAME,
    SUFFIXES,
    VIDEO_EXTENSIONS,
    OutputClaims,
    OutputNames,
    mirrored,
    output_name,
    parse_name_template,
    same_file,
    video_output_name,
)
from .pairing import Pair, Pairing, pair_folder, pair_folders

#: the skip kinds: a job whose outputs all exist (resumed runs) is skipped unless ``--overwrite``
SKIP_EXISTS = "output exists"


@dataclass
class Job:
    """Inputs to read and outputs to write together: one of each for mono models, two for a stereo pair
    (a single image for a stereo model is one input fed as both views, one output)."""

    inputs: tuple[Path, ...]
    outputs: tuple[Path, ...]
    #: set at planning time: the job is not run and reported as skipped with this reason
    skip: str | None = None
    #: why it is skipped, in a few words the summary counts by (:data:`SKIP_EXISTS`, ...)
    skip_kind: str | None = None
    #: set at planning time: the job is not run and reported as failed with this reason
    problem: str | None = None
    #: which job kind runs it: ``"image"`` (photos, stereo pairs) or ``"video"`` (one video in, one out)
    kind: str = "image"

    @property
    def name(self) -> str:
        return " + ".join(str(p) for p in self.inputs)

    @property
    def runnable(self) -> bool:
        return self.skip is None and self.problem is None


@dataclass(frozen=True)
class OutputSpec:
    """How outputs are named: ``-o``, ``--suffix``, ``--name``, ``--format``, ``--overwrite``.

    ``name`` is a template of the output's name without its extension (:data:`~.names.NAME_FIELDS`;
    default ``{stem}{suffix}``), checked here so that a bad one fails before any work; ``model`` is what
    ``{model}`` stands for (the model id, or the weights file's stem)."""

    task: str
    output: Path | None = None
    suffix: str | None = None
    fmt: str | None = None
    overwrite: bool = False
    name: str | None = None
    model: str = ""

    def __post_init__(self) -> None:
        if self.name is not None:
            parse_name_template(self.name)  # a bad template fails here, before any input is looked at

    @property
    def effective_suffix(self) -> str:
        return SUFFIXES[self.task] if self.suffix is None else self.suffix

    @property
    def names(self) -> OutputNames:
        """The naming rule: it makes outputs' names and recognises earlier outputs among inputs."""
        return OutputNames(self.name or DEFAULT_NAME, suffix=self.effective_suffix, model=self.model)


def plan(groups: Sequence[Sequence[Source]], spec: OutputSpec, *, file_output: bool = True) -> list[Job]:
    """One job per group of sources (one image, or the two views of a pair), with its output paths, skip
    reason or problem.

    Outputs go beside each input, or under ``-o`` with the input tree mirrored; with ``file_output`` a
    single input may name its output file with ``-o FILE``. An output never overwrites an input or
    another job's output; a job whose outputs all exist is skipped unless ``overwrite``.
    """
    out = spec.output
    single_file = False
    if out is not None and file_output:
        single_file = _output_is_file(out, spec, len(groups))
    if out is not None and not single_file and out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    claims = OutputClaims({s.path.resolve() for g in groups for s in g if s.problem is None})
    jobs: list[Job] = []
    for group in groups:
        inputs = tuple(s.path for s in group)
        problem = next((s.problem for s in group if s.problem is not None), None)
        if problem is not None:
            jobs.append(Job(inputs, (), problem=problem))
            continue
        kind = "video" if any(s.kind == "video" for s in group) else "image"
        if single_file and out is not None and _kind_of_name(out) != kind:
            want = ("a video: use .mp4, .mkv, .mov, .webm, ..." if kind == "video"
                    else "an image: use .png, .jpg, .webp or .tif")
            jobs.append(Job(inputs, (), problem=f"{inputs[0]}: -o {out} cannot hold {want}", kind=kind))
            continue
        outputs = tuple(out if single_file and out is not None else output_path(s, spec) for s in group)
        job = _claim(inputs, outputs, claims, spec.overwrite)
        job.kind = kind
        jobs.append(job)
    return jobs


def _kind_of_name(path: Path) -> str:
    """What an ``-o FILE`` name is for, by its extension."""
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def _output_is_file(out: Path, spec: OutputSpec, inputs: int) -> bool:
    """Whether ``-o`` names the output file of a single input (else it is a folder), refusing what cannot
    be meant: a file name for several inputs, a new name with an extension nafcli cannot write for one
    input (``out.xyz`` would silently become a folder), a ``--format`` that contradicts the file's
    extension (the extension would win). A video extension names a video file."""
    ext = out.suffix.lower()
    if out.is_dir() or not ext:
        return False
    if ext in VIDEO_EXTENSIONS:
        if inputs > 1:
            raise UsageError(f"-o {out}: {inputs} inputs need an output folder, not a file name")
        return True
    if ext not in WRITABLE:
        if inputs == 1 and not out.exists():
            raise UsageError(
                f"-o {out}: nafcli cannot write '{out.suffix}' files (use {', '.join(sorted(set(WRITABLE)))}); "
                f"to write into a folder of that name, create it first"
            )
        return False
    if inputs > 1:
        raise UsageError(f"-o {out}: {inputs} inputs need an output folder, not a file name")
    if spec.fmt is not None and WRITABLE[ext] != spec.fmt:
        raise UsageError(f"--format {spec.fmt} contradicts -o {out} (a {WRITABLE[ext]} file name): give one of them")
    return True


def output_path(src: Source, spec: OutputSpec) -> Path:
    """Where ``src``'s result goes when ``-o`` is a folder or absent: the input tree mirrored under
    ``-o`` (and its sub-folder), or beside the input, ``NAME<suffix>.<format>``."""
    if src.kind == "video":
        name = video_output_name(src.path, spec.effective_suffix, names=spec.names)
    else:
        name = output_name(src.path, spec.effective_suffix, spec.fmt, names=spec.names)
    if spec.output is None:
        return src.path.with_name(name)
    return mirrored(src.path, src.root, spec.output / src.subfolder, name)


def _claim(inputs: tuple[Path, ...], outputs: tuple[Path, ...], claims: OutputClaims, overwrite: bool) -> Job:
    for src, dst in zip(inputs, outputs, strict=True):
        problem = claims.problem(src, dst)
        if problem is not None:
            return Job(inputs, outputs, problem=problem)
    for src, dst in zip(inputs, outputs, strict=True):
        claims.claim(src, dst)
    if not overwrite and all(d.exists() for d in outputs):
        if len(outputs) == 1:
            return Job(inputs, outputs, skip=f"{outputs[0]} exists (use --overwrite to replace it)",
                       skip_kind=SKIP_EXISTS)
        names = " and ".join(str(d) for d in outputs)
        return Job(inputs, outputs, skip=f"{names} exist (use --overwrite to replace them)", skip_kind=SKIP_EXISTS)
    return Job(inputs, outputs)


def pair_groups(pairing: Pairing, *, roots: tuple[Path, Path] | None = None,
                subfolders: tuple[str, str] = ("", "")) -> list[list[Source]]:
    """The groups :func:`plan` takes for a pairing: each pair's two views, mirrored under ``-o`` from
    ``roots`` (the folders that were paired; default each file's own folder) into ``subfolders``, then each
    unmatched file as a refused job."""
    groups: list[list[Source]] = []
    for p in pairing.pairs:
        left_root, right_root = roots if roots is not None else (p.left.parent, p.right.parent)
        groups.append([Source(p.left, left_root, subfolder=subfolders[0]),
                       Source(p.right, right_root, subfolder=subfolders[1])])
    for u in pairing.unmatched:
        groups.append([Source(u.path, u.path.parent, problem=f"{u.path}: not processed: {u.reason}")])
    return groups


def stereo_groups(inputs: Sequence[Path], left: Path | None, right: Path | None, *,
                  exclude: str | OutputNames | None) -> list[list[Source]]:
    """What ``nafcli sr`` was given -> job groups: ``LEFT RIGHT`` (a pair), ``DIR`` (its pairs), one
    ``IMAGE`` (fed as both views), or ``--left DIR --right DIR`` (outputs in ``left/`` and ``right/``)."""
    if (left is None) != (right is None):
        raise UsageError("--left and --right go together")
    if left is not None and right is not None:
        if inputs:
            raise UsageError("give input paths or --left/--right folders, not both")
        if same_file(left, right):
            raise UsageError(f"--left {left} and --right {right} are the same folder: give the folder of each view")
        return pair_groups(pair_folders(left, right, exclude=exclude), roots=(left, right),
                           subfolders=("left", "right"))
    if not inputs:
        raise UsageError("give LEFT RIGHT, a folder, an image, or --left DIR --right DIR (see --help)")
    if len(inputs) > 2:
        raise UsageError(f"{len(inputs)} inputs given: expected LEFT RIGHT, one folder, or one image")
    if len(inputs) == 1 and inputs[0].is_dir():
        return pair_groups(pair_folder(inputs[0], exclude=exclude), roots=(inputs[0], inputs[0]))
    for p in inputs:
        if p.is_dir():
            raise UsageError(f"{p}: is a folder; for two folders use --left {inputs[0]} --right {inputs[-1]}")
        if not p.exists():
            raise ImageReadError(f"{p}: no such file")
    if len(inputs) == 1:
        return [[Source(inputs[0], inputs[0].parent)]]
    if same_file(inputs[0], inputs[1]):
        raise UsageError(f"{inputs[0]} and {inputs[1]} are the same file: give the left and the right view, or "
                         "one image alone for single-image SR")
    pairing = Pairing(pairs=[Pair(inputs[0].stem, inputs[0], inputs[1])])
    return pair_groups(pairing)
