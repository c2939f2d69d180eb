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
from .names import SUFFIXES, VIDEO_EXTENSIONS, OutputClaims, mirrored, output_name, video_output_name
from .pairing import Pair, Pairing, pair_folder, pair_folders


@dataclass
class Job:
    """Inputs to read and outputs to write together: one of each for mono models, two for a stereo pair
    (a single image for a stereo model is one input fed as both views, one output)."""

    inputs: tuple[Path, ...]
    outputs: tuple[Path, ...]
    #: set at planning time: the job is not run and reported as skipped with this reason
    skip: str | None = None
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
    """How outputs are named: ``-o``, ``--suffix``, ``--format``, ``--overwrite``."""

    task: str
    output: Path | None = None
    suffix: str | None = None
    fmt: str | None = None
    overwrite: bool = False

    @property
    def effective_suffix(self) -> str:
        return SUFFIXES[self.task] if self.suffix is None else self.suffix


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
        looks_like_file = not out.is_dir() and (out.suffix.lower() in WRITABLE or out.suffix.lower() in VIDEO_EXTENSIONS)
        if looks_like_file and len(groups) > 1:
            raise UsageError(f"-o {out}: {len(groups)} inputs need an output folder, not a file name")
        single_file = looks_like_file and len(groups) == 1
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


def output_path(src: Source, spec: OutputSpec) -> Path:
    """Where ``src``'s result goes when ``-o`` is a folder or absent: the input tree mirrored under
    ``-o`` (and its sub-folder), or beside the input, ``NAME<suffix>.<format>``."""
    if src.kind == "video":
        name = video_output_name(src.path, spec.effective_suffix)
    else:
        name = output_name(src.path, spec.effective_suffix, spec.fmt)
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
            return Job(inputs, outputs, skip=f"{outputs[0]} exists (use --overwrite to replace it)")
        names = " and ".join(str(d) for d in outputs)
        return Job(inputs, outputs, skip=f"{names} exist (use --overwrite to replace them)")
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
                  exclude: str | None) -> list[list[Source]]:
    """What ``nafcli sr`` was given -> job groups: ``LEFT RIGHT`` (a pair), ``DIR`` (its pairs), one
    ``IMAGE`` (fed as both views), or ``--left DIR --right DIR`` (outputs in ``left/`` and ``right/``)."""
    if (left is None) != (right is None):
        raise UsageError("--left and --right go together")
    if left is not None and right is not None:
        if inputs:
            raise UsageError("give input paths or --left/--right folders, not both")
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
    pairing = Pairing(pairs=[Pair(inputs[0].stem, inputs[0], inputs[1])])
    return pair_groups(pairing)
