"""NAFSSR's hyperparameters and what follows from them: the TLC window, strip geometry, the networks.

Why strips: the cross-view attention (SCAM) lets every pixel of a row attend to every pixel of the same
row in the other view, so cutting an image into side-by-side tiles changes the result. Full-width
horizontal strips, the same rows cut from both views, leave SCAM untouched: only the vertical reach of the
3x3 convolutions and of the TLC local mean crosses a strip boundary.

Exact vertical receptive field, in low-resolution rows (see docs/stereo.md): the ``intro`` 3x3 conv 1 row;
each of the ``n`` blocks the depthwise 3x3 ``conv2`` (1 row) feeding the TLC local mean, a box of 45 rows
centred on the row (22 each side): 23 rows per block; the ``up`` 3x3 conv 1 row. So a strip's rows are
exact from ``m = 23 n + 2`` rows inside each cut edge (:func:`receptive_field`), provided the TLC mean
takes the same form in the strip as in the whole image: a strip of at least 45 rows computes the same mean
as the whole image at every row at least 22 rows from its cut edges. Without TLC the channel attention
averages over the whole strip, and no strip split is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..descriptor import StereoModel, Strips
from ..windows import Window, window_for

if TYPE_CHECKING:
    from torch import dtype as TorchDtype
    from torch import nn

#: NAFSSR was trained on 30x90 low-resolution crops; every block keeps that size, so one window
TRAIN_SIZE: Window = (30, 90)
NAFSSR_WINDOW: Window = (window_for(TRAIN_SIZE[0], TRAIN_SIZE[0]), window_for(TRAIN_SIZE[1], TRAIN_SIZE[1]))
#: rows a strip needs so that the TLC mean takes the same form as in a taller image: fewer rows clip the
#: 45-row window to the strip and change every row's mean
MIN_STRIP_ROWS = NAFSSR_WINDOW[0]
#: the least strip height ``auto`` plans before it falls back to 2-D tiles: two TLC windows, so that a
#: strip holds its overlap and still advances by a window
MIN_AUTO_STRIP_ROWS = 2 * MIN_STRIP_ROWS
#: columns a 2-D tile needs for the same reason, in the fallback for very wide images
MIN_TILE_COLS = NAFSSR_WINDOW[1]
#: cap of the default overlap for deep models, whose exact receptive field exceeds any useful strip:
#: the blend starts one block's reach (23 rows) inside each strip and spans one TLC window (46 rows)
DEFAULT_OVERLAP_CAP = 4 * (NAFSSR_WINDOW[0] // 2 + 1)


def receptive_field(num_blks: int, window: Window = NAFSSR_WINDOW) -> int:
    """Rows of context, each side, that make an output row exact: ``num_blks * (window_h // 2 + 1) + 2``."""
    return num_blks * (window[0] // 2 + 1) + 2


def default_overlap(num_blks: int) -> int:
    """Rows shared by neighbouring strips when the user gives none: exact (``2 m``) where that is small,
    else :data:`DEFAULT_OVERLAP_CAP` (every official model: ``2 m`` >= 740 rows)."""
    return min(2 * receptive_field(num_blks), DEFAULT_OVERLAP_CAP)


def estimate_bytes(*, height: int, width: int, channels: int, scale: int, batch: int = 1) -> int:
    """Peak working memory of one NAFSSR forward pass on a ``height`` x ``width`` pair (float32).

    Terms fitted to the peak RSS of CPU runs (c 8..128, w 200..2000, h 46..400: within 5 %): the
    attention logits, their scaled copy and a softmax, ``3 h w^2`` floats (the H.W^2 cost of SCAM,
    which dominates for wide images); about ``10 c`` floats per pixel of feature maps (both views, a
    block's 2c-channel inner maps, the float64 integral image of the TLC mean); at the end, the
    upsampled input, the ``up`` outputs and their sum, ``18 s^2`` floats per input pixel.
    """
    hw = height * width
    floats = 3 * hw * width + 10 * channels * hw + 18 * scale * scale * hw
    return 4 * batch * floats


@dataclass(frozen=True)
class NAFSSRSpec:
    """NAFSSR hyperparameters, named as in the authors' configs."""

    up_scale: int
    width: int
    num_blks: int
    img_channel: int = 3

    arch: ClassVar[str] = "nafssr"
    descriptor: ClassVar[type[StereoModel]] = StereoModel

    @property
    def scale(self) -> int:
        return self.up_scale

    @property
    def size_multiple(self) -> int:
        return 1

    def config(self) -> dict[str, Any]:
        return {"up_scale": self.up_scale, "width": self.width, "num_blks": self.num_blks}

    def describe(self) -> str:
        return f"NAFSSR width {self.width}, {self.num_blks} blocks, x{self.up_scale}"

    def build(self, *, tlc: bool) -> nn.Module:
        from .net import NAFSSR

        return NAFSSR(up_scale=self.up_scale, width=self.width, num_blks=self.num_blks,
                      img_channel=self.img_channel, tlc=tlc)

    def fast(self, module: nn.Module, *, dtype: TorchDtype, fold_sca: bool = False) -> nn.Module:
        from .fast import optimize

        return optimize(module, dtype=dtype, fold_sca=fold_sca)  # type: ignore[arg-type]

    def bytes_for(self, height: int, width: int, batch: int) -> int:
        return estimate_bytes(height=height, width=width, channels=self.width, scale=self.up_scale, batch=batch)

    def tiling(self, *, tlc: bool) -> Strips:
        note = None if tlc else ("without TLC the channel attention averages over each whole strip; "
                                 "use --tile 0 for the exact result")
        return Strips(
            margin=receptive_field(self.num_blks),
            min_rows=MIN_STRIP_ROWS,
            min_auto_rows=MIN_AUTO_STRIP_ROWS,
            min_cols=MIN_TILE_COLS,
            default_overlap=default_overlap(self.num_blks),
            bytes_for=self.bytes_for,
            inexact_note=note,
        )
