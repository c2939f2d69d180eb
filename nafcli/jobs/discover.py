"""What the user typed (files, folders, glob patterns) -> the input files, in a stable order."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .names import (
    OutputNames,
    has_image_extension,
    input_kind,
    is_hidden_or_system,
    is_output,
    is_system_dir,
    looks_like_input,
)


class Sources(list["Source"]):
    """The sources :func:`discover` found, and what it left out that the user may have meant."""

    #: images (by extension) in sub-folders of the folders given, left out because the run is not
    #: recursive (the summary says so, with the option that takes them)
    in_subfolders: int = 0


@dataclass(frozen=True)
class Source:
    """One input file and the folder its output path is mirrored from."""

    path: Path
    #: the directory the user named (outputs mirror ``path`` relative to it); for files, their parent
    root: Path
    #: a reason this input cannot be used (missing file, a pattern that matched nothing)
    problem: str | None = None
    #: a folder under ``-o`` for this input's output (the two-folder stereo layout: ``left``, ``right``)
    subfolder: str = ""
    #: ``"image"`` or ``"video"`` (:func:`~.names.input_kind`): which job kind restores it
    kind: str = "image"


def discover(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    exclude_suffix: str | OutputNames | None = None,
    exclude_dirs: Sequence[Path] = (),
) -> Sources:
    """Expand files, directories and glob patterns into sources, in a stable (sorted) order.

    Files named explicitly are always tried, whatever they hold (a bad one then fails with a reason).
    In directories, a file is taken when its content is an image or a video, or its extension says it
    should be one (each source's ``kind`` says which); hidden and system files are skipped, and so are
    earlier outputs (names that ``exclude_suffix`` makes: a suffix, or an :class:`~.names.OutputNames`
    rule) and ``exclude_dirs`` (an output folder inside the input folder), so a re-run
    over the same folder does not restore its own results.
    """
    sources = Sources()
    seen: set[Path] = set()
    excluded = [d.resolve() for d in exclude_dirs]

    def add(src: Source) -> None:
        key = src.path.resolve() if src.problem is None else src.path
        if key not in seen:
            seen.add(key)
            if src.problem is None and input_kind(src.path) == "video":
                src = replace(src, kind="video")
            sources.append(src)

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            for f in _walk(path, recursive, exclude_suffix, excluded):
                add(Source(f, path))
            if not recursive:
                sources.in_subfolders += _count_below(path, exclude_suffix, excluded)
        elif path.exists():
            add(Source(path, path.parent))
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file() and not is_hidden_or_system(Path(m))]
            files = [f for f in files if looks_like_input(f)]
            if not files:
                add(Source(path, path.parent, problem=f"{text}: no images match this pattern"))
            base = _glob_base(text)
            for f in files:
                add(Source(f, base))
        else:
            add(Source(path, path.parent, problem=f"{text}: no such file or directory"))
    return sources


def _count_below(root: Path, exclude_suffix: str | OutputNames | None, excluded: list[Path]) -> int:
    """Images (by extension: cheap, no file opened) in the sub-folders of ``root``, as ``--recursive``
    would find them; symbolic links to folders are not followed."""
    count = 0
    for top, dirs, files in os.walk(root):
        here = Path(top)
        if here == root:
            files = []  # root's own files are the inputs, not left out
        dirs[:] = [d for d in dirs if not is_hidden_or_system(here / d) and not is_system_dir(here / d)
                   and (here / d).resolve() not in excluded]
        count += sum(1 for f in files if has_image_extension(here / f) and not is_hidden_or_system(here / f)
                     and not is_output(here / f, exclude_suffix))
    return count


def _glob_base(pattern: str) -> Path:
    """The directory part of a pattern before its first wildcard (mirroring starts there)."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _walk(
    root: Path, recursive: bool, exclude_suffix: str | OutputNames | None, excluded: list[Path],
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
            if recursive and not is_system_dir(p) and p.resolve() not in excluded:
                found.extend(_walk(p, recursive, exclude_suffix, excluded, visited))
            continue
        if is_output(p, exclude_suffix):
            continue
        if looks_like_input(p):
            found.append(p)
    return found
