"""The decoded image every layer above passes around: pixels of their native depth, alpha kept apart."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
