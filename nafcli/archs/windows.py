"""TLC window sizes: a function of the training crop alone (no torch, so specs stay cheap to import).

At test time TLC replaces the global average pool inside each channel attention by a box mean over a window
1.5x the size of the feature map the layer saw at training size (Chu et al., ECCV 2022).
"""

from __future__ import annotations

Window = tuple[int, int]

#: the authors' factor between the TLC window and the feature size seen at training size
BASE_FACTOR = 1.5


def window_for(side: int, train_side: int, base_factor: float = BASE_FACTOR) -> int:
    """The window, along one axis, of a feature map of ``side`` pixels at training size ``train_side``:
    the authors set ``base = int(train_side * 1.5)`` and scale it by ``side / train_side`` (floored)."""
    return side * int(train_side * base_factor) // train_side
