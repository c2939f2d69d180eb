"""Test-time local statistics (TLC, Chu et al., "Improving Image Restoration by Revisiting Global
Information Aggregation", ECCV 2022).

At test time the global average pool inside each simplified channel attention (SCA) is replaced by a
box mean over a window 1.5x the size of the feature map the layer saw at training size. The window is
therefore a function of the configuration alone (:func:`nafcli.archs.windows.window_for`); each architecture computes its
windows from its training crop without running a dummy forward pass.

The box mean is computed with an integral image, as the authors do, but the running sums are kept in
float64. A float32 integral image of a 4000x3000 map loses precision as the sums grow (the difference of
two large, nearly equal numbers); float64 keeps the result within 1e-7 of an exact computation while
the cost stays linear in the number of pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .windows import Window


def local_mean(x: torch.Tensor, window: Window) -> torch.Tensor:
    """Mean over a ``window`` around each pixel, as TLC defines it; same shape as ``x`` (or N,C,1,1).

    1. When the window covers the whole map, the ordinary global mean (shape N,C,1,1).
    2. Otherwise, with the window clipped to the map, the mean over every full window (stride 1),
       replicate-padded back to HxW: left/top get ``(d)//2``, right/bottom ``(d+1)//2``.
    """
    h, w = x.shape[-2:]
    k1, k2 = window
    if k1 >= h and k2 >= w:
        return x.mean(dim=(-2, -1), keepdim=True)
    k1, k2 = min(h, k1), min(w, k2)
    acc = x.to(torch.float64)
    s = F.pad(acc.cumsum(dim=-1), (1, 0))
    rows = s[..., k2:] - s[..., :-k2]
    del s
    s = F.pad(rows.cumsum(dim=-2), (0, 0, 1, 0))
    del rows
    box = (s[..., k1:, :] - s[..., :-k1, :]).div_(k1 * k2).to(x.dtype)
    del s
    _h, _w = box.shape[-2:]
    pad = ((w - _w) // 2, (w - _w + 1) // 2, (h - _h) // 2, (h - _h + 1) // 2)
    return F.pad(box, pad, mode="replicate")


class MeanPool(nn.Module):
    """The pooling half of SCA: global mean, or the TLC local mean when ``window`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.window: Window | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            return x.mean(dim=(-2, -1), keepdim=True)
        return local_mean(x, self.window)

    def extra_repr(self) -> str:
        return f"window={self.window}"
