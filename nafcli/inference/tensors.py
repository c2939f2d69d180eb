"""Images <-> tensors: the one place where pixels become network input and network output becomes pixels.

The conventions are the authors' demo's: RGB float32 in [0, 1] into the network, the output clamped to
[0, 1], times the maximum value, rounded (half to even, as numpy does), cast back to the input's type.
Gray images go through the RGB network as three equal channels and come back as their mean; an alpha
channel passes through unchanged (resized for super-resolution). The views of a stereo pair sit side by
side on the channel axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..imaging.image import Image

#: channels of one view as the networks see it (gray is repeated to RGB)
RGB = 3


def image_to_tensor(image: Image) -> torch.Tensor:
    """H x W x C integer pixels -> 1 x 3 x H x W float32 in [0, 1] (gray repeated to RGB)."""
    arr = image.pixels.astype(np.float32)
    arr /= float(image.max_value)  # in place: one float copy of a 24 MP photo is already 288 MB
    return floats_to_tensor(arr)


def floats_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """H x W x C float32 in [0, 1] -> 1 x 3 x H x W (gray repeated), for float input from Python."""
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    return t.expand(-1, RGB, -1, -1).contiguous() if t.shape[1] == 1 else t


def views_to_tensor(images: Sequence[Image]) -> torch.Tensor:
    """The views of one input (one image, or a stereo pair) side by side on the channel axis."""
    parts = [image_to_tensor(im) for im in images]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def split_views(y: torch.Tensor, count: int) -> list[torch.Tensor]:
    """The inverse of :func:`views_to_tensor` on the network's output: ``count`` tensors of 3 channels."""
    return [y[:, RGB * i : RGB * (i + 1)] for i in range(count)]


def tensor_to_image(y: torch.Tensor, like: Image, scale: int) -> Image:
    """1 x 3 x H x W float in [0, 1] -> an :class:`Image` of ``like``'s type, gray and alpha kept."""
    y = y[0]
    if like.is_gray:
        y = y.mean(dim=0, keepdim=True)
    maxv = float(like.max_value)
    arr = y.numpy()
    np.multiply(arr, maxv, out=arr)  # in place (the caller's buffer is done with): no float copies
    np.round(arr, out=arr)
    arr = arr.transpose(1, 2, 0)
    pixels = np.ascontiguousarray(arr.astype(like.pixels.dtype))
    alpha = like.alpha
    if alpha is not None and scale != 1:
        import cv2

        alpha = cv2.resize(alpha, (like.width * scale, like.height * scale), interpolation=cv2.INTER_CUBIC)
    info = dict(like.info)
    if scale != 1 and "dpi" in info:  # the same print size: scale x the pixels, scale x the pixels per inch
        info["dpi"] = tuple(d * scale for d in info["dpi"])
    return Image(pixels=pixels, alpha=alpha, source=like.source, info=info)


def tensor_to_floats(y: torch.Tensor, like: Image, peak: float = 255.0) -> np.ndarray:
    """1 x 3 x H x W in [0, 1] -> H x W x C float64 on the [0, ``peak``] scale, not rounded (gray: the
    mean of the channels), for scoring the network's unquantised output."""
    arr = y[0].double().numpy().transpose(1, 2, 0) * peak
    return arr.mean(axis=2, keepdims=True) if like.is_gray else arr
