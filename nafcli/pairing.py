"""Stereo pairs from paths: which left view goes with which right view. Paths only, no images, no torch.

Two ways to lay out pairs, both common in stereo data sets:

* one folder, the side in the name: ``0001_L.png`` / ``0001_R.png`` (Flickr1024, KITTI-style exports) or
  ``scene_left.jpg`` / ``scene_right.jpg``; the marker is matched without regard to case;
* two folders, ``--left DIR`` and ``--right DIR``, the views paired by name: the same stem, or the same
  stem once a side marker is taken off (``a_L.png`` in the left folder pairs with ``a_R.png``).

Every image that does not end up in a pair is returned in :attr:`Pairing.unmatched` with the reason, so
the caller can report it: nothing is dropped silently. Files that are not images (by extension), hidden
files and nafcli's own outputs (stem ending in ``_sr``, or the ``--suffix`` given, written beside the inputs by default, so that a
second run over the same folder does not take them for inputs) are not considered at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ImageReadError

#: extensions read as images (OpenCV decodes all of them)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})

#: (left marker, right marker) pairs at the end of a stem, tried in order
_MARKERS = re.compile(r"^(?P<key>.+?)[_\-.](?P<side>l|r|left|right)$", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
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


#: stems that mark nafcli's own outputs
OUTPUT_SUFFIX = "_sr"


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def is_input(path: Path, output_suffix: str = OUTPUT_SUFFIX) -> bool:
    """An image that is not one of our outputs."""
    return is_image(path) and not (output_suffix and path.stem.endswith(output_suffix))


def side_of(path: Path) -> tuple[str, str] | None:
    """``(key, "left"|"right")`` from a name such as ``0001_L.png`` or ``x_right.jpg``, else None."""
    m = _MARKERS.match(path.stem)
    if m is None:
        return None
    side = m.group("side").lower()
    return m.group("key"), ("left" if side in ("l", "left") else "right")


def _images(folder: Path, output_suffix: str) -> list[Path]:
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and is_input(p, output_suffix))
    except FileNotFoundError:
        raise ImageReadError(f"{folder}: no such folder") from None
    except NotADirectoryError:
        raise ImageReadError(f"{folder}: not a folder") from None
    except OSError as e:
        raise ImageReadError(f"{folder}: cannot list ({e.strerror or e})") from None
    return entries


def pair_folder(folder: str | os.PathLike[str], *, output_suffix: str = OUTPUT_SUFFIX) -> Pairing:
    """Pair ``*_L.*`` with ``*_R.*`` and ``*_left.*`` with ``*_right.*`` inside one folder."""
    result = Pairing()
    sides: dict[tuple[str, str], dict[str, list[Path]]] = {}
    for path in _images(Path(folder), output_suffix):
        found = side_of(path)
        if found is None:
            result.unmatched.append(
                Unmatched(path, "no side marker in the name (_L/_R or _left/_right before the extension)")
            )
            continue
        key, side = found
        # _L pairs with _R, _left with _right: the marker's spelling (short or long) is part of the key
        long_form = path.stem.lower().endswith(("left", "right"))
        group = sides.setdefault((key, "long" if long_form else "short"), {"left": [], "right": []})
        group[side].append(path)
    for (_key, _form), views in sorted(sides.items()):
        _match(views["left"], views["right"], result)
    result.pairs.sort(key=lambda p: str(p.left))
    return result


def pair_folders(
    left_dir: str | os.PathLike[str], right_dir: str | os.PathLike[str], *, output_suffix: str = OUTPUT_SUFFIX
) -> Pairing:
    """Pair the images of two folders by name (same stem, or same stem without a side marker)."""
    result = Pairing()
    lefts = _images(Path(left_dir), output_suffix)
    rights = _images(Path(right_dir), output_suffix)

    def key(path: Path, side: str) -> str:
        found = side_of(path)
        return found[0] if found is not None and found[1] == side else path.stem

    by_stem_l: dict[str, list[Path]] = {}
    by_stem_r: dict[str, list[Path]] = {}
    for p in lefts:
        by_stem_l.setdefault(key(p, "left"), []).append(p)
    for p in rights:
        by_stem_r.setdefault(key(p, "right"), []).append(p)
    for k in sorted(set(by_stem_l) | set(by_stem_r)):
        _match(by_stem_l.get(k, []), by_stem_r.get(k, []), result, other_folders=(left_dir, right_dir))
    result.pairs.sort(key=lambda p: str(p.left))
    return result


def _match(
    lefts: list[Path],
    rights: list[Path],
    result: Pairing,
    other_folders: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> None:
    if len(lefts) == 1 and len(rights) == 1:
        result.pairs.append(Pair(lefts[0], rights[0]))
        return
    if lefts and rights:  # several files for one name (e.g. a.png and a.jpg): refuse to guess
        names = ", ".join(p.name for p in lefts + rights)
        for p in lefts + rights:
            result.unmatched.append(Unmatched(p, f"ambiguous: several views share its name ({names})"))
        return
    for p in lefts:
        where = f" in {other_folders[1]}" if other_folders else ""
        result.unmatched.append(Unmatched(p, f"no right view{where}"))
    for p in rights:
        where = f" in {other_folders[0]}" if other_folders else ""
        result.unmatched.append(Unmatched(p, f"no left view{where}"))
