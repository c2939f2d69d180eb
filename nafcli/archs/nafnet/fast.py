"""NAFNet on the fast path (see :mod:`nafcli.archs.fast_blocks` for what changes and why it is exact)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fast_blocks import CHANNELS_LAST, FastNetwork, build_fast, conv_like
from .net import NAFNet


class FastNAFNet(FastNetwork):
    """:class:`~nafcli.archs.NAFNet` (with or without TLC) on the fast path.

    Input: N x C x H x W float32 (any memory format); output: float32, same layout as the reference.
    """

    def __init__(self, ref: NAFNet, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> None:
        super().__init__(ref, dtype=dtype, fold_sca=fold_sca)
        self.size_multiple = ref.size_multiple
        self.ending = conv_like(ref.ending)

        def blocks(seq: nn.Sequential) -> nn.Sequential:
            return nn.Sequential(*[self.fast_block(b) for b in seq])

        self.encoders = nn.ModuleList(blocks(s) for s in ref.encoders)
        self.downs = nn.ModuleList(conv_like(d) for d in ref.downs)
        self.middle_blks = blocks(ref.middle_blks)
        self.ups = nn.ModuleList(conv_like(u[0]) for u in ref.ups)
        self.decoders = nn.ModuleList(blocks(s) for s in ref.decoders)
        self.to(dtype=dtype, memory_format=CHANNELS_LAST)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        m = self.size_multiple
        inp = F.pad(inp.float(), (0, (m - w % m) % m, 0, (m - h % m) % m)).contiguous(memory_format=CHANNELS_LAST)
        x = self.intro(inp.to(self.compute_dtype))
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, skips[::-1], strict=True):
            x = decoder(F.pixel_shuffle(up(x), 2) + skip)
        out = self.ending(x).float() + inp
        return out[..., :h, :w].contiguous()


def optimize(ref: NAFNet, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> FastNAFNet:
    """The fast equivalent of a reference ``NAFNet`` (eval mode, on its device). ``dtype`` is the compute
    type of weights and activations (statistics stay float32); the TLC setting is taken from ``ref`` now."""
    return build_fast(FastNAFNet, NAFNet, ref, dtype=dtype, fold_sca=fold_sca)  # type: ignore[return-value]
