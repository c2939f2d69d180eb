"""What Pillow reads besides the pixels: format, mode, orientation, ICC profile, EXIF, resolution (DPI),
XMP, frame count; and applying it to OpenCV's pixels (orientation, gray stays gray, opaque alpha dropped).

What is kept goes to ``Image.info`` (``icc_profile``, ``exif``, ``dpi``, ``xmp``) for
:mod:`nafcli.imaging.write` to put back in whatever format is written.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from ..errors import ImageReadError
from .image import Image


def _read_metadata(name: str, data: np.ndarray) -> dict:
    """Header-level facts via Pillow (lazy: no pixel decoding)."""
    import io

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    meta: dict = {}
    head = data[:26].tobytes()
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        meta["png_color_type"] = head[25]
    try:
        with warnings.catch_warnings():
            # our own --max-pixels limit applies; Pillow's bomb warning would print on stderr
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data.tobytes()))
        with im:
            meta["size"] = im.size
            meta["mode"] = im.mode
            meta["format"] = (im.format or "").lower()
            meta["frames"] = int(getattr(im, "n_frames", 1) or 1)
            meta["transparency"] = "transparency" in im.info
            icc = im.info.get("icc_profile")
            if icc:
                meta["icc_profile"] = icc
            try:
                exif = im.getexif()
            except Exception:  # noqa: BLE001 - damaged EXIF must not cost the pixels
                exif = None
            if exif and meta["format"] == "tiff":
                # a TIFF's EXIF is its whole first IFD: keep the description, not the file's structure
                # (strips, sample layout) nor what is kept on its own (ICC profile, XMP)
                for tag in _TIFF_OWN_TAGS.intersection(exif):
                    del exif[tag]
            if exif:
                meta["orientation"] = int(exif.get(0x0112, 1) or 1)
                if 0x0112 in exif:
                    exif[0x0112] = 1
                try:
                    meta["exif"] = exif.tobytes()
                except Exception:  # noqa: BLE001
                    pass
            tags = getattr(im, "tag_v2", None)
            if tags is not None and 2 in (tags.get(338) or ()):
                meta["unassociated_alpha"] = True  # TIFF ExtraSamples: straight (not premultiplied) alpha
            dpi = _dpi(im.info.get("dpi"))
            if dpi is not None:
                meta["dpi"] = dpi
            xmp = _xmp(im)
            if xmp:
                meta["xmp"] = xmp
    except UnidentifiedImageError:
        pass  # OpenCV may still know it; it decides
    except PILImage.DecompressionBombError:
        meta["warnings"] = [f"{name}: too large for Pillow to read its metadata; orientation and ICC ignored"]
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{name}: damaged image header ({e})") from None
    return meta


#: tags of a TIFF's first IFD that describe the file, not the photo (image size, samples, compression,
#: strips and tiles, predictor, extra samples, sample format), and the ICC profile and XMP, kept apart
_TIFF_OWN_TAGS = frozenset({256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325,
                            330, 338, 339, 700, 34675})


def _dpi(value: object) -> tuple[float, float] | None:
    """Pillow's ``dpi`` (PNG pHYs, JFIF density, TIFF/BMP resolution) when it is a real one."""
    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _xmp(im: object) -> bytes | None:
    """The XMP packet: a JPEG APP1 or WebP chunk (``xmp``), a PNG iTXt (``XML:com.adobe.xmp``), a TIFF
    tag 700."""
    info = getattr(im, "info", {})
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    tags = getattr(im, "tag_v2", None)
    if not xmp and tags is not None:
        xmp = tags.get(700)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(xmp) if isinstance(xmp, (bytes, bytearray, tuple)) and xmp else None


#: the orientation in an XMP packet, as an attribute or an element (``tiff:Orientation="6"``)
_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation>)\s*[2-8]')


def _upright_xmp(xmp: bytes) -> bytes:
    """An XMP packet whose ``tiff:Orientation`` says 1, for pixels already turned upright (as the EXIF
    orientation is reset), so that no viewer turns them again."""
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp)


_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _apply_metadata(image: Image, meta: dict, fmt: str) -> Image:
    """Orientation, gray/alpha clean-up and metadata on top of OpenCV's pixels."""
    warnings: list[str] = list(meta.get("warnings", []))
    mode = meta.get("mode", "")
    name = image.source
    if meta.get("png_color_type") in (0, 4):
        mode = "LA" if meta["png_color_type"] == 4 else "L"  # Pillow calls 16-bit gray+alpha "RGBA"
    if mode in _GRAY_MODES and not image.is_gray:
        # OpenCV expands gray+alpha to BGRA; gray must stay gray
        image = Image(pixels=np.ascontiguousarray(image.pixels[:, :, :1]), alpha=image.alpha,
                      source=name)
    if image.alpha is not None and "A" not in mode and not meta.get("transparency", False) and mode:
        if bool((image.alpha == image.max_value).all()):
            image.alpha = None  # GIF frames come back BGRA with an opaque alpha: nothing to keep
    if mode == "CMYK":
        warnings.append(f"{name}: CMYK image converted to RGB")
    if meta.get("frames", 1) > 1:
        warnings.append(f"{name}: animated image ({meta['frames']} frames); only the first frame is used")
    orientation = meta.get("orientation", 1)
    if orientation not in (1, 0):
        image.pixels = apply_orientation(image.pixels, orientation)
        if image.alpha is not None:
            image.alpha = apply_orientation(image.alpha, orientation)
    info = image.info
    info["format"] = fmt
    info["mode"] = mode
    info["orientation"] = orientation
    if meta.get("icc_profile") and mode != "CMYK":  # a CMYK profile does not describe RGB pixels
        info["icc_profile"] = meta["icc_profile"]
    if meta.get("exif"):
        info["exif"] = meta["exif"]
    if meta.get("dpi"):
        x, y = meta["dpi"]
        info["dpi"] = (y, x) if orientation in (5, 6, 7, 8) else (x, y)  # a quarter turn swaps the axes
    if meta.get("xmp"):
        info["xmp"] = _upright_xmp(meta["xmp"]) if orientation not in (1, 0) else meta["xmp"]
    if warnings:
        info["warnings"] = warnings
    return image


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` (2..8) upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr
