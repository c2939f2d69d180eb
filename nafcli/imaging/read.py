"""Files -> :class:`Image`. Knows nothing of models.

Pixels are decoded with OpenCV, as the authors' demo does, so that nafcli sees exactly the values their
pipeline sees (JPEG decoders differ by a level here and there). An image is returned as an
:class:`Image`: RGB (or gray) pixels as a numpy array of their native bit depth, the alpha channel kept
apart so it can pass through unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, ImageTooLargeError, os_reason
from .formats import sniff_format
from .image import Image
from .metadata import _apply_metadata, _read_metadata


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Decode an image file. Raises :class:`ImageReadError` with a one-line reason.

    Pixels come from OpenCV (parity with the authors' pipeline); Pillow reads only the header and
    metadata: the real format (by content, whatever the extension says), EXIF orientation, ICC profile,
    EXIF, the colour mode (to keep gray gray) and the frame count. Anything worth telling the user
    (an animation reduced to its first frame, a CMYK conversion) goes to ``info["warnings"]``: the
    library does not print.
    """
    import cv2

    p = Path(path)
    name = str(p)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f"{name}: {os_reason(e)}") from None
    if data.size == 0:
        raise ImageReadError(f"{name}: empty file")
    fmt = sniff_format(data[:64].tobytes())
    if fmt is None:
        raise ImageReadError(f"{name}: not an image (unrecognised content)")
    _check_complete(name, fmt, data)
    meta = _read_metadata(name, data)
    if max_pixels is not None and meta.get("size"):
        w, h = meta["size"]
        check_pixels(name, w, h, max_pixels)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise ImageReadError(f"{name}: not an image, or a damaged one ({fmt})")
    if meta.get("unassociated_alpha") and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 4:
        arr = _straight_rgba(data, arr)
    image = from_cv2(arr, source=name)
    if max_pixels is not None:
        check_pixels(name, image.width, image.height, max_pixels)
    return _apply_metadata(image, meta, fmt)


def _straight_rgba(data: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """An 8-bit RGBA TIFF with straight alpha (what nafcli, Pillow and most editors write) as BGRA: OpenCV
    decodes it premultiplied (colour x alpha), so the colours come from Pillow, which keeps them."""
    import io

    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data.tobytes())) as im:
            rgba = np.asarray(im.convert("RGBA") if im.mode != "RGBA" else im)
    except Exception:  # noqa: BLE001 - Pillow cannot: OpenCV's pixels are better than none
        return decoded
    if rgba.shape != decoded.shape:
        return decoded
    return np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])


def check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse images above the pixel limit before spending memory on them."""
    if max_pixels > 0 and width * height > max_pixels:
        size, limit = megapixels_apart(width * height, max_pixels)
        raise ImageTooLargeError(
            f"{name}: {width}x{height} is {size}, above the limit of {limit} (raise it with --max-pixels)"
        )


def megapixels_apart(pixels: int, limit: int) -> tuple[str, str]:
    """``pixels`` and ``limit`` (pixels < limit is false) in megapixels with the fewest decimals (at least
    one) that keep the statement true: the limit not shown as 0 and the image shown above it ("0.1 MP,
    above the limit of 0.0 MP" was both false and useless for ``--max-pixels 1000``). Exact pixel counts
    when even six decimals cannot tell them apart."""
    for digits in range(1, 7):
        a, b = f"{pixels / 1e6:.{digits}f}", f"{limit / 1e6:.{digits}f}"
        if float(a) > float(b) > 0:
            return f"{a} MP", f"{b} MP"
    return f"{pixels} pixels", f"{limit} pixels"


def _check_complete(name: str, fmt: str, data: np.ndarray) -> None:
    """Catch truncated PNG/JPEG files before decoding: OpenCV would decode them partially (grey
    bottom rows) and libjpeg would print a warning of its own on stderr."""
    raw = data.tobytes()
    if fmt == "png" and raw.rfind(b"IEND") < 0:
        raise ImageReadError(f"{name}: truncated PNG (no end chunk); the file is incomplete")
    if fmt == "jpeg":
        # 0xFFD9 cannot occur inside entropy-coded data, so the last start-of-scan must be followed
        # by an end-of-image marker (an EXIF thumbnail has its own pair earlier in the file)
        if raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda"):
            raise ImageReadError(f"{name}: truncated JPEG (no end-of-image marker); the file is incomplete")


def from_cv2(arr: np.ndarray, *, source: str = "") -> Image:
    """Turn an OpenCV array (BGR/BGRA/gray, any bit depth) into an :class:`Image`."""
    if arr.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(arr.dtype, np.floating):
            arr = (np.clip(arr, 0.0, 1.0) * 65535.0).round().astype(np.uint16)
        else:
            raise ImageReadError(f"{source}: unsupported sample type {arr.dtype}")
    if arr.ndim == 2:
        return Image(pixels=arr[:, :, None], source=source)
    channels = arr.shape[2]
    if channels == 1:
        return Image(pixels=arr, source=source)
    if channels == 2:  # gray + alpha
        return Image(pixels=arr[:, :, :1].copy(), alpha=arr[:, :, 1].copy(), source=source)
    if channels == 3:
        return Image(pixels=np.ascontiguousarray(arr[:, :, ::-1]), source=source)
    if channels == 4:
        return Image(
            pixels=np.ascontiguousarray(arr[:, :, 2::-1]), alpha=arr[:, :, 3].copy(), source=source
        )
    raise ImageReadError(f"{source}: unsupported number of channels ({channels})")
