"""The one home for input and output names: what counts as an image, what is skipped, the side markers of
stereo views, how outputs are named, and which output names collide.

denoise, deblur, sr and eval all read their folders through these rules, so the same folder means the
same thing to every command and to the Python API.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..imaging.formats import EXTENSIONS, output_format, sniff_file

#: extensions that suggest an image; a file with one is tried (and fails cleanly if it is not one)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif"})

#: extensions that suggest a video (content decides first: see :func:`input_kind`); an output keeps its
#: input's extension when it is one of these, so the container stays the same
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".mpg",
                              ".mpeg", ".vob", ".flv", ".ivf", ".mxf", ".wmv", ".asf", ".3gp", ".3g2", ".ogv"})
#: the container of a video output whose input's extension names none (a video found by its content):
#: Matroska holds every codec and stream kind the input may have
VIDEO_FALLBACK_EXTENSION = ".mkv"

#: files that operating systems scatter in photo folders
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
SYSTEM_DIRS = frozenset({"__macosx", "$recycle.bin", "system volume information", "@eadir"})

#: the suffix each task adds to its outputs' names (by registry task)
SUFFIXES = {"denoise": "_denoised", "deblur": "_deblurred", "stereo-sr": "_sr"}
#: every suffix nafcli's commands add (eval matches ``photo_denoised`` with its target ``photo``)
TOOL_SUFFIXES = tuple(SUFFIXES.values())

#: a side marker at the end of a stem: ``0001_L``, ``scene-right``, ``x.l`` (any case)
_SIDE = re.compile(r"^(?P<key>.+?)[_\-.](?P<side>l|r|left|right)$", re.IGNORECASE)
#: the two views inside a scene folder (the authors' Flickr1024 layout: ``lr0``/``lr1``, ``hr0``/``hr1``)
_SCENE_LEFT = re.compile(r"(?:^|[_\-.a-z])(?:l|left|0)$", re.IGNORECASE)
_SCENE_RIGHT = re.compile(r"(?:^|[_\-.a-z])(?:r|right|1)$", re.IGNORECASE)


def is_hidden_or_system(path: Path) -> bool:
    """``.DS_Store``, ``._photo.jpg`` (macOS resource forks), ``Thumbs.db`` and other dot files."""
    name = path.name
    return name.startswith(".") or name.lower() in SYSTEM_FILES


def is_system_dir(path: Path) -> bool:
    return path.name.lower() in SYSTEM_DIRS


def has_image_extension(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def looks_like_image(path: Path) -> bool:
    """An image by its extension or, whatever its name, by its content."""
    return has_image_extension(path) or sniff_file(path) is not None


def has_video_extension(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def input_kind(path: Path) -> str | None:
    """``"image"``, ``"video"`` or None (neither), by content first, then by extension.

    An image's signature decides at once; then the video layer's :func:`~nafcli.imaging.video.is_video`
    (container signatures, else FFmpeg), so a video named ``.jpg`` goes the video way. A file neither
    recognises keeps the kind its extension suggests, so that it fails with that kind's reason
    (``clip.mp4: empty file (0 bytes), not a video``, not "not an image").
    """
    if sniff_file(path) is not None:
        return "image"
    from ..imaging.video_probe import is_video  # PyAV: only once inputs are looked at, not for --help

    if is_video(path):
        return "video"
    if has_image_extension(path):
        return "image"
    if has_video_extension(path):
        return "video"
    return None


def looks_like_input(path: Path) -> bool:
    """An image or a video (what denoise and deblur take from folders and patterns)."""
    return looks_like_image(path) or input_kind(path) is not None


def is_output(path: Path, suffix: str | None) -> bool:
    """One of nafcli's own outputs (its stem ends in the suffix a run adds), not to be taken as input."""
    return bool(suffix) and path.stem.endswith(suffix)  # type: ignore[arg-type]


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


# --- stereo views ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """What a side marker says: the pair's key, the side, and the marker's form (``_L`` pairs with
    ``_R``, ``_left`` with ``_right``, never across forms)."""

    key: str
    side: str  # "left" | "right"
    form: str  # "short" | "long"


def side_of(path: Path) -> Side | None:
    """The side marker at the end of the stem (``0001_L.png``, ``x_right.jpg``), or None."""
    m = _SIDE.match(path.stem)
    if m is None:
        return None
    marker = m.group("side").lower()
    return Side(m.group("key"), "left" if marker in ("l", "left") else "right",
                "short" if len(marker) == 1 else "long")


def order_scene_views(a: Path, b: Path) -> tuple[Path, Path] | None:
    """The (left, right) order of a scene folder's two images (``lr0``/``lr1``, ``*_L``/``*_R``), or None
    when the names do not tell."""
    if _SCENE_LEFT.search(a.stem) and _SCENE_RIGHT.search(b.stem):
        return a, b
    if _SCENE_LEFT.search(b.stem) and _SCENE_RIGHT.search(a.stem):
        return b, a
    return None


# --- output names ----------------------------------------------------------------------------------


def output_name(src: Path, suffix: str, fmt: str | None) -> str:
    """``photo.jpg`` -> ``photo_denoised.jpg``: the suffix, and the extension of the format written
    (``fmt``, else the input's own format when it can hold the result, else PNG)."""
    return f"{src.stem}{suffix}{EXTENSIONS[output_format(src, fmt)]}"


def video_output_name(src: Path, suffix: str) -> str:
    """``clip.mov`` -> ``clip_deblurred.mov``: a video keeps its container (``--format`` is for photos);
    a video found by its content under another extension is written as Matroska."""
    ext = src.suffix if has_video_extension(src) else VIDEO_FALLBACK_EXTENSION
    return f"{src.stem}{suffix}{ext}"


def mirrored(src: Path, root: Path, out_dir: Path, name: str) -> Path:
    """``out_dir`` / (``src``'s folder relative to ``root``) / ``name``: the input tree mirrored."""
    try:
        rel = src.parent.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path()
    return out_dir / rel / name


class OutputClaims:
    """Which outputs a plan has given out, so that no output overwrites an input or another output."""

    def __init__(self, inputs: set[Path]) -> None:
        self.inputs = inputs
        self.claimed: dict[Path, Path] = {}

    def problem(self, src: Path, dst: Path) -> str | None:
        """Why ``src`` cannot write ``dst`` (None: it can); does not claim it."""
        key = dst.resolve()
        if key in self.inputs or same_file(src, dst):
            return f"{src}: output {dst} would overwrite an input; use another --suffix, --format or -o"
        if key in self.claimed:
            return f"{src}: output {dst} is also the output of {self.claimed[key]}; use --format or -o to tell them apart"
        return None

    def claim(self, src: Path, dst: Path) -> None:
        self.claimed[dst.resolve()] = src
