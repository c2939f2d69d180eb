"""Image formats: recognised by content, what nafcli writes, what each format can hold.

One list of output formats (:data:`OUTPUT_FORMATS`) serves ``--format``, ``-o FILE`` and the default choice
(the input's own format when it can hold the result, else PNG).
"""

from __future__ import annotations

import os
from pathlib import Path

#: formats nafcli writes, by the extension of the output path
WRITABLE = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff",
            ".bmp": "bmp"}

#: the values ``--format`` takes (aliases: jpeg, tif)
OUTPUT_FORMATS = ("png", "jpg", "webp", "tiff")
_ALIASES = {"jpeg": "jpg", "tif": "tiff"}


def normalise_format(name: str) -> str | None:
    """``JPEG`` -> ``jpg``, ``tif`` -> ``tiff``; None for a format nafcli does not write."""
    fmt = _ALIASES.get(name.strip().lower(), name.strip().lower())
    return fmt if fmt in OUTPUT_FORMATS else None


#: what each output format can hold: (16-bit samples, alpha)
CAPABILITIES = {"png": (True, True), "tiff": (True, True), "webp": (False, True), "jpg": (False, False),
                "bmp": (False, False)}
#: the extension written for each format
EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}


def can_hold(fmt: str, *, sixteen_bit: bool, alpha: bool) -> bool:
    """Whether ``fmt`` stores an image with these properties without loss of depth or alpha."""
    deep, transparent = CAPABILITIES.get(fmt, (False, False))
    return (deep or not sixteen_bit) and (transparent or not alpha)


#: magic numbers, by format; enough to recognise images whatever their extension
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def sniff_format(head: bytes) -> str | None:
    """The image format of a file from its first bytes, or None. Content, not extension, decides."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            if fmt == "bmp" and head[14:18] not in (
                b"\x0c\x00\x00\x00", b"(\x00\x00\x00", b"@\x00\x00\x00", b"l\x00\x00\x00",
                b"|\x00\x00\x00",
            ):
                return None  # "BM" alone is too weak: require a known DIB header size
            return fmt
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """:func:`sniff_format` on a file; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return sniff_format(f.read(64))
    except OSError:
        return None


#: sniffed format -> the format nafcli writes by default for it (None: not writable, use PNG)
_NATIVE = {"png": "png", "jpeg": "jpg", "webp": "webp", "tiff": "tiff", "bmp": "bmp", "gif": None}


def output_format(path: Path, requested: str | None) -> str:
    """``--format`` if given, else the input's own format when nafcli can write it losslessly enough
    (JPEG stays JPEG), else PNG (GIF, a BMP with alpha, anything unknown)."""
    if requested:
        return normalise_format(requested) or requested
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
