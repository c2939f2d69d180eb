"""Files <-> arrays. Knows nothing of models.

Pixels are decoded with OpenCV, as the authors' demo does, so that nafcli sees exactly the values their
pipeline sees (JPEG decoders differ by a level here and there). An image is returned as an
:class:`Image`: RGB (or gray) pixels as a numpy array of their native bit depth, the alpha channel kept
apart so it can pass through unchanged.

Writing is atomic: the encoded bytes go to a temporary file in the target folder, which is then renamed
over the target, so an interrupted run never leaves a half-written image.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImageReadError, ImageWriteError

#: formats nafcli writes, by the extension of the output path
WRITABLE = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff",
            ".bmp": "bmp"}


@dataclass
class Image:
    """Decoded pixels and what must survive the round trip."""

    #: H x W x 3 RGB, or H x W x 1 gray; uint8 or uint16
    pixels: np.ndarray
    #: H x W alpha of the same dtype, or None
    alpha: np.ndarray | None = None
    #: the file it came from, for messages
    source: str = ""
    #: extra data the writer may use (ICC profile, EXIF, ...)
    info: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] == 1


def read_image(path: str | os.PathLike[str]) -> Image:
    """Decode an image file. Raises :class:`ImageReadError` with a one-line reason."""
    import cv2

    p = Path(path)
    name = str(p)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory") from None
    except OSError as e:
        raise ImageReadError(f"{name}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageReadError(f"{name}: empty file")
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise ImageReadError(f"{name}: not an image, or a damaged one")
    return from_cv2(arr, source=name)


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


def to_cv2(image: Image) -> np.ndarray:
    """The OpenCV layout of an :class:`Image` (BGR, BGRA, gray)."""
    px = image.pixels
    if image.is_gray:
        out = px[:, :, 0]
        if image.alpha is not None:
            out = np.dstack([out, out, out, image.alpha])
        return out
    bgr = px[:, :, ::-1]
    if image.alpha is not None:
        return np.ascontiguousarray(np.dstack([bgr, image.alpha]))
    return np.ascontiguousarray(bgr)


def write_image(path: str | os.PathLike[str], image: Image, *, quality: int | None = None) -> None:
    """Encode ``image`` by the extension of ``path`` and put it there atomically."""
    import cv2

    p = Path(path)
    name = str(p)
    ext = p.suffix.lower()
    if ext not in WRITABLE:
        raise ImageWriteError(f"{name}: cannot write {ext or 'files without an extension'}; use .png, .jpg, .webp, .tif")
    arr = to_cv2(image)
    params: list[int] = []
    if ext in (".jpg", ".jpeg", ".webp", ".bmp") and arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality if quality is not None else 95]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality if quality is not None else 95]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise ImageWriteError(f"{name}: could not encode the image as {ext}")
    atomic_write_bytes(p, buf.tobytes())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    name = str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageWriteError(f"{name}: cannot write ({e.strerror or e})") from None
        raise
