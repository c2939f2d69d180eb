"""NAFNet on the fast path (see :mod:`nafcli.archs.fast_blocks` for what changes and why it is exact)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import native
from ..fast_blocks import CHANNELS_LAST, FastNetwork, build_fast, conv_like
from .net import NAFNet

#: up-sampling products from this many input channels on run in the native kernels (see FastNAFNet._up)
NATIVE_UP_CHANNELS = 256


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
        #: each up-sampling product in the native kernels' layout, and the weight it was made from
        self._native_ups: dict[int, native.Made] = {}
        self.to(dtype=dtype, memory_format=CHANNELS_LAST)

    def _up(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The i-th up-sampling product (1x1, C -> 2C). In fp32 on the CPU with the native kernels, from
        :data:`NATIVE_UP_CHANNELS` channels on, it runs in their micro-kernel: oneDNN's 256 -> 512 product
        rounds differently with one thread and with two on the Zen 5 EPYC, and a one-thread Ray worker must
        write the bytes of a two-thread run. Narrower ones stay on oneDNN (the same bytes at both thread
        counts there, and faster: 64 -> 128 on 528x528 17.6 ms against 28.8 natively; 256 -> 512 on
        132x132 11.9 against 13.6, 512 -> 1024 on 66x66 12.5 against 12.1)."""
        up = self.ups[i]
        if (up.in_channels >= NATIVE_UP_CHANNELS and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.compiler.is_compiling()):
            lib = native.load()
            if (isinstance(lib, native.Library) and native.usable(x, lib)
                    and native.linear_supported(lib, up.in_channels, up.out_channels)):
                self._native_ups[i] = native.remade(self._native_ups.get(i), up, native.linear_weights)
                return native.linear(lib, self._native_ups[i][1], x)
        return up(x)

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
        for i, (decoder, skip) in enumerate(zip(self.decoders, skips[::-1], strict=True)):
            x = decoder(F.pixel_shuffle(self._up(i, x), 2) + skip)
        out = self.ending(x).float() + inp
        return out[..., :h, :w].contiguous()


def optimize(ref: NAFNet, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> FastNAFNet:
    """The fast equivalent of a reference ``NAFNet`` (eval mode, on its device). ``dtype`` is the compute
    type of weights and activations (statistics stay float32); the TLC setting is taken from ``ref`` now."""
    return build_fast(FastNAFNet, NAFNet, ref, dtype=dtype, fold_sca=fold_sca)  # type: ignore[return-value]
