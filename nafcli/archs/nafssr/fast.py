"""NAFSSR on the fast path (see :mod:`nafcli.archs.fast_blocks` for what changes and why it is exact)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fast_blocks import (
    CHANNELS_LAST,
    FastNetwork,
    build_fast,
    conv_like,
    fold_norm,
    layer_norm_cl,
    scale_out,
)
from .net import NAFSSR, SCAM


class FastSCAM(nn.Module):
    """:class:`~nafcli.archs.SCAM` with norms, the query scale and beta/gamma folded into projections."""

    def __init__(self, ref: SCAM) -> None:
        super().__init__()
        self.eps_l, self.eps_r = ref.norm_l.eps, ref.norm_r.eps
        scale = torch.full((ref.l_proj1.out_channels,), ref.scale, dtype=torch.float64, device=ref.l_proj1.weight.device)
        self.l_proj1 = fold_norm(ref.norm_l, ref.l_proj1, scale)
        self.r_proj1 = fold_norm(ref.norm_r, ref.r_proj1)
        # f_r2l = softmax(.) @ v_r, then * beta per channel: beta scales v_r's channels.
        self.r_proj2 = scale_out(ref.r_proj2, ref.beta)
        self.l_proj2 = scale_out(ref.l_proj2, ref.gamma)

    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``x``: the left views (``x[:n]``) and the right views (``x[n:]``) as one batch; same out."""
        x_l, x_r = x[:n], x[n:]
        q_l = self.l_proj1(layer_norm_cl(x_l, self.eps_l)).permute(0, 2, 3, 1)  # B H W c
        q_r_t = self.r_proj1(layer_norm_cl(x_r, self.eps_r)).permute(0, 2, 1, 3)  # B H c W
        v_l = self.l_proj2(x_l).permute(0, 2, 3, 1)
        v_r = self.r_proj2(x_r).permute(0, 2, 3, 1)
        att = torch.matmul(q_l, q_r_t)  # B H W W
        dt = x_l.dtype
        f_r2l = torch.matmul(torch.softmax(att, dim=-1, dtype=torch.float32).to(dt), v_r)
        f_l2r = torch.matmul(torch.softmax(att.transpose(-1, -2), dim=-1, dtype=torch.float32).to(dt), v_l)
        out = torch.empty_like(x)  # written in place: no concatenation copy per block
        torch.add(x_l, f_r2l.permute(0, 3, 1, 2), out=out[:n])
        torch.add(x_r, f_l2r.permute(0, 3, 1, 2), out=out[n:])
        return out


class FastNAFSSR(FastNetwork):
    """:class:`~nafcli.archs.NAFSSR` on the fast path; both views share each NAFBlock call."""

    size_multiple = 1

    def __init__(self, ref: NAFSSR, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> None:
        super().__init__(ref, dtype=dtype, fold_sca=fold_sca)
        self.up_scale = ref.up_scale
        self.blks = nn.ModuleList(self.fast_block(w.module.blk) for w in ref.body)
        self.fusions = nn.ModuleList(FastSCAM(w.module.fusion) for w in ref.body)
        self.up = conv_like(ref.up[0])
        self.to(dtype=dtype, memory_format=CHANNELS_LAST)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        inp = inp.float()
        inp_hr = F.interpolate(inp, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
        n = inp.shape[0]
        views = torch.cat(inp.chunk(2, dim=1), dim=0).contiguous(memory_format=CHANNELS_LAST)  # 2N, C, H, W
        x = self.intro(views.to(self.compute_dtype))
        for blk, fusion in zip(self.blks, self.fusions, strict=True):
            x = fusion(blk(x), n)
        y = F.pixel_shuffle(self.up(x), self.up_scale).float()
        return torch.cat([y[:n], y[n:]], dim=1) + inp_hr


def optimize(ref: NAFSSR, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> FastNAFSSR:
    """The fast equivalent of a reference ``NAFSSR`` (eval mode, on its device). ``dtype`` is the compute
    type of weights and activations (statistics stay float32); the TLC setting is taken from ``ref`` now."""
    return build_fast(FastNAFSSR, NAFSSR, ref, dtype=dtype, fold_sca=fold_sca)  # type: ignore[return-value]
