"""The one home for input and output names: what counts as an image, what is skipped, the side markers of
stereo views, how outputs are named, and which output names collide.

denoise, deblur, sr and eval all read their folders through these rules, so the same folder means the
same thing to every command and to the Python API.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..imaging.formats import EXTENSIONS, WRITABLE, output_format, sniff_file

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


def is_output(path: Path, rule: str | OutputNames | None) -> bool:
    """One of nafcli's own outputs, not to be taken as input: its name is what ``rule`` makes (a suffix
    stands for the default ``{stem}{suffix}``: the stem ends in the suffix a run adds)."""
    if rule is None:
        return False
    if isinstance(rule, str):
        rule = OutputNames(suffix=rule)
    return rule.made(path)


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


#: the fields of ``--name`` templates, and the template of every command's default names
NAME_FIELDS = ("stem", "ext", "suffix", "model")
DEFAULT_NAME = "{stem}{suffix}"
#: what the fields that vary by input match in an output's name
_FIELD_PATTERNS = {"stem": ".*", "ext": "[^.]*"}


def parse_name_template(template: str) -> list[tuple[str, str | None]]:
    """``{stem}_{ext}{suffix}`` -> ``[("", "stem"), ("_", "ext"), ("", "suffix")]``: literal text, then
    the field after it (None at the end). :class:`UsageError` naming the problem for an unknown field, a
    format spec, a path separator or a template that would give every input the same name."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise UsageError(f"--name {template!r}: {e} (write a literal brace as {{{{ or }}}})") from None
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and name not in NAME_FIELDS:
            known = ", ".join("{" + f + "}" for f in NAME_FIELDS)
            raise UsageError(f"--name {template!r}: unknown field {{{name}}}; use {known}")
        if spec or conversion:
            raise UsageError(f"--name {template!r}: {{{name}}} takes no format spec or conversion")
        parts.append((literal, name))
    literal = "".join(lit for lit, _ in parts)
    if "/" in literal or os.sep in literal or (os.altsep and os.altsep in literal):
        raise UsageError(f"--name {template!r}: a name, not a path (use -o DIR for another folder)")
    if not any(name == "stem" for _, name in parts):
        raise UsageError(f"--name {template!r}: without {{stem}} every input would get the same name")
    return parts


@dataclass(frozen=True)
class OutputNames:
    """How one run names its outputs: the ``--name`` template (default ``{stem}{suffix}``), the suffix and
    the model it fills in. It also recognises the names it makes, so that a re-run over a folder does not
    take its own earlier outputs for inputs."""

    template: str = DEFAULT_NAME
    suffix: str = ""
    model: str = ""
    _parts: list[tuple[str, str | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parts", parse_name_template(self.template))

    def stem(self, src: Path) -> str:
        """The output's name without its extension: ``IMG.JPG`` -> ``IMG_denoised``."""
        values = {"stem": src.stem, "ext": src.suffix[1:], "suffix": self.suffix, "model": self.model}
        return "".join(lit + (values[name] if name else "") for lit, name in self._parts)

    def made(self, path: Path) -> bool:
        """Whether ``path`` has a name this rule makes (``photo_denoised.png`` for the default), or the
        default template with the same suffix makes (the outputs of an earlier run without ``--name``).
        A template whose names hold nothing but the input's own name and extension tells no output
        apart: it matches nothing."""
        if self._matches(self._parts, path.stem):
            return True
        return self.template != DEFAULT_NAME and self._matches(parse_name_template(DEFAULT_NAME), path.stem)

    def _matches(self, parts: list[tuple[str, str | None]], stem: str) -> bool:
        fixed = {"suffix": self.suffix, "model": self.model}
        if not any(lit or fixed.get(name or "") for lit, name in parts):
            return False
        pattern = ""
        for lit, name in parts:
            pattern += re.escape(lit)
            if name in fixed:
                pattern += re.escape(fixed[name])
            elif name is not None:
                pattern += _FIELD_PATTERNS[name]
        return re.fullmatch(pattern, stem) is not None


def output_extension(src: Path, fmt: str) -> str:
    """The extension of ``src``'s output in format ``fmt``: the input's own, spelled as it is (``.JPG``,
    ``.tiff``, ``.jpeg``), when it names that format; else the format's (``.png``)."""
    if WRITABLE.get(src.suffix.lower()) == fmt:
        return src.suffix
    return EXTENSIONS[fmt]


def output_name(src: Path, suffix: str, fmt: str | None, *, names: OutputNames | None = None) -> str:
    """``photo.jpg`` -> ``photo_denoised.jpg``: the name ``names`` makes (default ``{stem}{suffix}``) and
    the extension of the format written (``fmt``, else the input's own format when it can hold the
    result, else PNG), spelled as the input spells it when it is the input's own."""
    rule = names if names is not None else OutputNames(suffix=suffix)
    return rule.stem(src) + output_extension(src, output_format(src, fmt))


def video_output_name(src: Path, suffix: str, *, names: OutputNames | None = None) -> str:
    """``clip.mov`` -> ``clip_deblurred.mov``: the name ``names`` makes (default ``{stem}{suffix}``); a
    video keeps its container (``--format`` is for photos), and one found by its content under another
    extension is written as Matroska."""
    rule = names if names is not None else OutputNames(suffix=suffix)
    ext = src.suffix if has_video_extension(src) else VIDEO_FALLBACK_EXTENSION
    return rule.stem(src) + ext


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
            return f"{src}: output {dst} would overwrite an input; use another --suffix or --name, or -o DIR"
        if key in self.claimed:
            return (f"{src}: output {dst} is also the output of {self.claimed[key]}; tell them apart with "
                    "--name '{stem}_{ext}{suffix}' (the input's extension in the name)")
        return None

    def claim(self, src: Path, dst: Path) -> None:
        self.claimed[dst.resolve()] = src
