"""Stereo pairs from paths: which left view goes with which right view. Paths only, no images, no torch.

One rule for every command (``nafcli sr DIR``, ``nafcli eval --task sr``, the Python API), in three
layouts common in stereo data sets:

* one folder, the side in the name: ``0001_L.png`` / ``0001_R.png`` (Flickr1024, KITTI-style exports) or
  ``scene_left.jpg`` / ``scene_right.jpg``; the marker is matched without regard to case, and ``_L`` pairs
  with ``_R``, ``_left`` with ``_right``;
* one sub-folder per scene holding its two views (``scene/lr0.png`` and ``scene/lr1.png``, the authors'
  Flickr1024 layout; also ``hr0``/``hr1`` or side markers);
* two folders (``--left DIR --right DIR``), the views paired by name: the same stem, or the same stem once
  a side marker is taken off (``a_L.png`` in the left folder pairs with ``a_R.png``).

Every image that does not end up in a pair is returned in :attr:`Pairing.unmatched` with the reason, so
the caller can report it: nothing is dropped silently. Hidden files and nafcli's own outputs (``exclude``:
the suffix a run adds) are not considered at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImageReadError, os_reason
from .names import (
    OutputNames,
    has_image_extension,
    is_hidden_or_system,
    is_output,
    order_scene_views,
    side_of,
)


@dataclass(frozen=True)
class Pair:
    """A left and a right view; ``key`` names the pair (the stem without its marker, or the scene)."""

    key: str
    left: Path
    right: Path

    @property
    def name(self) -> str:
        return f"{self.left.name} + {self.right.name}"


@dataclass(frozen=True)
class Unmatched:
    path: Path
    reason: str


@dataclass
class Pairing:
    pairs: list[Pair] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)

    def sort(self) -> Pairing:
        self.pairs.sort(key=lambda p: str(p.left))
        return self


def list_images(folder: Path, exclude: str | OutputNames | None = None) -> list[Path]:
    """The images directly in ``folder`` (by extension; hidden files and ``exclude``-suffixed outputs
    left out), sorted; :class:`ImageReadError` when it is not a folder."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise ImageReadError(f"{folder}: {os_reason(e, missing='no such folder', verb='list')}") from None
    return [p for p in entries if p.is_file() and has_image_extension(p) and not is_hidden_or_system(p)
            and not is_output(p, exclude)]


def pair_folder(folder: str | os.PathLike[str], *, exclude: str | OutputNames | None = None) -> Pairing:
    """Pair the views of one folder: side-marked files, and scene sub-folders of two views each."""
    root = Path(folder)
    result = Pairing()
    groups: dict[tuple[str, str], dict[str, list[Path]]] = {}
    for path in list_images(root, exclude):
        side = side_of(path)
        if side is None:
            result.unmatched.append(
                Unmatched(path, "no side marker in the name (_L/_R or _left/_right before the extension)")
            )
            continue
        group = groups.setdefault((side.key, side.form), {"left": [], "right": []})
        group[side.side].append(path)
    for (key, _form), views in sorted(groups.items()):
        _match(key, views["left"], views["right"], result)
    for scene in sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden_or_system(p)):
        _scene(scene, exclude, result)
    return result.sort()


def _scene(folder: Path, exclude: str | OutputNames | None, result: Pairing) -> None:
    images = list_images(folder, exclude)
    if not images:
        return
    if len(images) != 2:
        result.unmatched.append(Unmatched(folder, f"a scene folder needs exactly two views, found {len(images)}"))
        return
    ordered = order_scene_views(*images)
    if ordered is None:
        result.unmatched.append(
            Unmatched(folder, f"cannot tell the left view from the right ({images[0].name}, {images[1].name})")
        )
        return
    result.pairs.append(Pair(folder.name, *ordered))


def pair_folders(
    left_dir: str | os.PathLike[str], right_dir: str | os.PathLike[str], *, exclude: str | OutputNames | None = None
) -> Pairing:
    """Pair the images of two folders by name (same stem, or same stem without a side marker)."""
    result = Pairing()

    def key(path: Path, wanted: str) -> str:
        side = side_of(path)
        return side.key if side is not None and side.side == wanted else path.stem

    lefts: dict[str, list[Path]] = {}
    rights: dict[str, list[Path]] = {}
    for p in list_images(Path(left_dir), exclude):
        lefts.setdefault(key(p, "left"), []).append(p)
    for p in list_images(Path(right_dir), exclude):
        rights.setdefault(key(p, "right"), []).append(p)
    for k in sorted(set(lefts) | set(rights)):
        _match(k, lefts.get(k, []), rights.get(k, []), result, folders=(left_dir, right_dir))
    return result.sort()


def _match(
    key: str,
    lefts: list[Path],
    rights: list[Path],
    result: Pairing,
    folders: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> None:
    if len(lefts) == 1 and len(rights) == 1:
        result.pairs.append(Pair(key, lefts[0], rights[0]))
        return
    if lefts and rights:  # several files for one name (e.g. a.png and a.jpg): refuse to guess
        names = ", ".join(p.name for p in lefts + rights)
        for p in lefts + rights:
            result.unmatched.append(Unmatched(p, f"ambiguous: several views share its name ({names})"))
        return
    for p in lefts:
        where = f" in {folders[1]}" if folders else ""
        result.unmatched.append(Unmatched(p, f"no right view{where}"))
    for p in rights:
        where = f" in {folders[0]}" if folders else ""
        result.unmatched.append(Unmatched(p, f"no left view{where}"))
