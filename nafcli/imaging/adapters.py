"""numpy arrays and PIL images <-> :class:`~nafcli.imaging.image.Image`, for ``Restorer.restore``.

Python users hand over what they have: an H x W x 3 RGB array (uint8, uint16 or float in [0, 1]), a gray
H x W or H x W x 1 array, an RGBA array, or a PIL image. They get back the same type, shape and dtype, so
``restore`` drops into existing code. Floats are not quantised: they go to the network as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .image import Image


@dataclass
class UserImage:
    """An :class:`Image` plus what is needed to give the caller back the type they passed in."""

    image: Image
    kind: str  # "numpy" or "pil"
    dtype: Any = None
    ndim: int = 3
    mode: str = ""
    #: float input: the RGB/gray pixels as float32, H x W x C
    floats: np.ndarray | None = None


def from_user(obj: Any) -> UserImage:
    """Accept a numpy array or a PIL image; refuse anything else with a clear message."""
    if isinstance(obj, np.ndarray):
        return _from_array(obj)
    try:
        from PIL import Image as PILImage
    except ImportError:  # pragma: no cover - Pillow is a dependency
        PILImage = None  # type: ignore[assignment]
    if PILImage is not None and isinstance(obj, PILImage.Image):
        return _from_pil(obj)
    raise UsageError(f"restore() takes a numpy array or a PIL image, not {type(obj).__name__}")


def _from_array(arr: np.ndarray) -> UserImage:
    ndim, shape = arr.ndim, tuple(arr.shape)
    if ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise UsageError(f"expected an H x W, H x W x 1, 3 or 4 array, got shape {shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UsageError(f"expected an image of at least 1 x 1 pixels, got shape {shape}")
    color = arr[:, :, :1] if arr.shape[2] in (1, 2) else arr[:, :, :3]
    alpha = arr[:, :, -1] if arr.shape[2] in (2, 4) else None
    if np.issubdtype(arr.dtype, np.floating):
        # one NaN would reach every output pixel through the channel attention's means: refused up front
        bad = int(np.count_nonzero(~np.isfinite(color)))
        if bad:
            raise UsageError(f"float pixels must be finite: {bad} NaN or infinite value{'s' if bad != 1 else ''} "
                             f"in the {'gray' if color.shape[2] == 1 else 'RGB'} channels")
        floats = np.clip(color.astype(np.float32), 0.0, 1.0)
        placeholder = np.zeros(color.shape, np.uint16)
        image = Image(pixels=placeholder, alpha=None if alpha is None else alpha.copy())
        return UserImage(image, "numpy", arr.dtype, ndim, floats=floats)
    if arr.dtype not in (np.uint8, np.uint16):
        raise UsageError(f"expected uint8, uint16 or float pixels, got {arr.dtype}")
    image = Image(pixels=np.ascontiguousarray(color), alpha=None if alpha is None else alpha.copy())
    return UserImage(image, "numpy", arr.dtype, ndim)


def _from_pil(im: Any) -> UserImage:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(im).astype(np.uint16)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
    elif mode == "P":
        arr = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
    elif mode in ("1",):
        arr = np.asarray(im.convert("L"))
    elif mode == "I":
        arr = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif mode == "F":
        arr = np.asarray(im).astype(np.float32)
    else:  # CMYK, YCbCr, LAB, ...: RGB is what the network knows
        arr = np.asarray(im.convert("RGB"))
    w = _from_array(arr)
    w.kind, w.mode = "pil", mode
    return w


def to_user(w: UserImage, result: Image, floats: np.ndarray | None = None) -> Any:
    """Build the caller's type from the restored pixels (``floats`` for float input)."""
    color = floats if floats is not None else result.pixels
    if floats is not None:
        color = color.astype(w.dtype)
    alpha = result.alpha
    parts = [color] if alpha is None else [color, alpha[:, :, None].astype(color.dtype)]
    arr = np.concatenate(parts, axis=2) if len(parts) > 1 else color
    if w.ndim == 2 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if w.kind == "numpy":
        return np.ascontiguousarray(arr)
    from PIL import Image as PILImage

    # Pillow infers the mode from shape and dtype: L, LA, RGB, RGBA for uint8, I;16 for 2-D uint16
    if w.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        return PILImage.fromarray(np.ascontiguousarray(arr.astype("<u2")))
    if w.mode == "F":
        return PILImage.fromarray(np.ascontiguousarray(arr.astype(np.float32)))
    return PILImage.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
