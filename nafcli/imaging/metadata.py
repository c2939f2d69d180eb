"""What Pillow reads besides the pixels: format, mode, orientation, ICC profile, EXIF, frame count; and
applying it to OpenCV's pixels (orientation, gray stays gray, opaque alpha dropped)."""

from __future__ import annotations

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
            if exif:
                meta["orientation"] = int(exif.get(0x0112, 1) or 1)
                if 0x0112 in exif:
                    exif[0x0112] = 1
                try:
                    meta["exif"] = exif.tobytes()
                except Exception:  # noqa: BLE001
                    pass
    except UnidentifiedImageError:
        pass  # OpenCV may still know it; it decides
    except PILImage.DecompressionBombError:
        meta["warnings"] = [f"{name}: too large for Pillow to read its metadata; orientation and ICC ignored"]
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{name}: damaged image header ({e})") from None
    return meta


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
