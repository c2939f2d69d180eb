"""NAFSSR (Chu et al., "NAFSSR: Stereo Image Super-Resolution Using NAFNet", CVPRW 2022).

A stack of NAFBlocks applied to each view with the same weights, each followed by a stereo
cross-attention module (SCAM) that exchanges information between the views along whole image rows.
Input and output hold both views side by side on the channel axis: left in 0..2, right in 3..5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import LayerNorm2d, NAFBlock
from .spec import NAFSSR_WINDOW


class SCAM(nn.Module):
    """Stereo cross-attention: each pixel attends to every pixel of the same row in the other view."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.scale = c**-0.5
        self.norm_l = LayerNorm2d(c)
        self.norm_r = LayerNorm2d(c)
        self.l_proj1 = nn.Conv2d(c, c, 1)
        self.r_proj1 = nn.Conv2d(c, c, 1)
        self.l_proj2 = nn.Conv2d(c, c, 1)
        self.r_proj2 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))

    def forward(self, x_l: torch.Tensor, x_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_l = self.l_proj1(self.norm_l(x_l)).permute(0, 2, 3, 1)  # B H W c
        q_r_t = self.r_proj1(self.norm_r(x_r)).permute(0, 2, 1, 3)  # B H c W
        v_l = self.l_proj2(x_l).permute(0, 2, 3, 1)
        v_r = self.r_proj2(x_r).permute(0, 2, 3, 1)
        attention = torch.matmul(q_l, q_r_t) * self.scale  # B H W(left) W(right)
        f_r2l = torch.matmul(torch.softmax(attention, dim=-1), v_r)
        f_l2r = torch.matmul(torch.softmax(attention.transpose(-1, -2), dim=-1), v_l)
        return (
            x_l + f_r2l.permute(0, 3, 1, 2) * self.beta,
            x_r + f_l2r.permute(0, 3, 1, 2) * self.gamma,
        )


class _StereoBlock(nn.Module):
    """NAFBlock on each view, then SCAM between them (keys ``blk.*`` and ``fusion.*``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.blk = NAFBlock(channels)
        self.fusion = SCAM(channels)

    def forward(self, x_l: torch.Tensor, x_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fusion(self.blk(x_l), self.blk(x_r))


class _Wrapped(nn.Module):
    """Holds a block under ``module`` so keys read ``body.i.module.*`` (the authors' DropPath, an
    identity at inference)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class NAFSSR(nn.Module):
    def __init__(
        self,
        *,
        up_scale: int,
        width: int,
        num_blks: int,
        img_channel: int = 3,
        tlc: bool = True,
    ) -> None:
        super().__init__()
        self.up_scale = up_scale
        self.width = width
        self.num_blks = num_blks
        self.img_channel = img_channel
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.body = nn.ModuleList([_Wrapped(_StereoBlock(width)) for _ in range(num_blks)])
        self.up = nn.Sequential(
            nn.Conv2d(width, img_channel * up_scale**2, 3, padding=1), nn.PixelShuffle(up_scale)
        )
        self.tlc = False
        self.set_tlc(tlc)

    size_multiple = 1

    def set_tlc(self, enabled: bool) -> NAFSSR:
        """Every official NAFSSR runs with TLC, window (45, 135); ``False`` gives the global mean."""
        for wrapped in self.body:
            wrapped.module.blk.sca[0].window = NAFSSR_WINDOW if enabled else None
        self.tlc = enabled
        return self

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        inp_hr = F.interpolate(inp, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
        x_l, x_r = inp.chunk(2, dim=1)
        x_l, x_r = self.intro(x_l), self.intro(x_r)
        for wrapped in self.body:
            x_l, x_r = wrapped.module(x_l, x_r)
        return torch.cat([self.up(x_l), self.up(x_r)], dim=1) + inp_hr
