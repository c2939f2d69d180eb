"""NAFNet on the fast path (see :mod:`nafcli.archs.fast_blocks` for what changes and why it is exact)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import native
from ..fast_blocks import CHANNELS_LAST, FastNetwork, build_fast, conv_like
from .net import NAFNet

#: up- and down-sampling convolutions from this many input channels on run in the native kernels (see
#: FastNAFNet._resample)
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
        #: each up- and down-sampling convolution and the ending in the native kernels' layout, and the weight
        #: it was made from
        self._native: dict[tuple[str, int], native.Made] = {}
        self.to(dtype=dtype, memory_format=CHANNELS_LAST)

    def _resample(self, kind: str, i: int, x: torch.Tensor) -> torch.Tensor:
        """The i-th up-sampling product (``kind`` "up": 1x1, C -> 2C) or down-sampling convolution ("down":
        2x2 stride 2, C -> 2C). In fp32 on the CPU with the native kernels, from :data:`NATIVE_UP_CHANNELS`
        channels on, they run in the kernels' micro-kernel: oneDNN rounds some of these shapes differently
        with one thread and with two (the 256 -> 512 up-sampling product on the Zen 5 EPYC, the 256 -> 512
        down-sampling on an 8 x 10 map on the Xeon), and a one-thread Ray worker must write the bytes of a
        two-thread run. Narrower ones stay on oneDNN (the same bytes at both thread counts on both CPUs, and
        faster; on the Xeon, ms, native / oneDNN: down 32 -> 64 on 1056^2 23.2 / 17.6, up 64 -> 128 on
        528^2 24.6 / 17.8; at 256 channels: down 16.3 / 14.8, up 17.4 / 16.1)."""
        conv = self.ups[i] if kind == "up" else self.downs[i]
        if (conv.in_channels >= NATIVE_UP_CHANNELS and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.compiler.is_compiling()):
            lib = native.load()
            if isinstance(lib, native.Library) and native.usable(x, lib):
                if kind == "up" and native.linear_supported(lib, conv.in_channels, conv.out_channels):
                    made = self._native[kind, i] = native.remade(self._native.get((kind, i)), conv,
                                                                 native.linear_weights)
                    return native.linear(lib, made[1], x)
                if kind == "down" and native.down_supported(lib, conv, x):
                    made = self._native[kind, i] = native.remade(self._native.get((kind, i)), conv,
                                                                 native.down_weights)
                    return native.down(lib, made[1], x)
        return conv(x)

    def _up_skip(self, i: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The i-th decoder level's input: the up-sampling product, its pixel shuffle and the skip sum. In
        fp32 on the CPU with the native kernels in one pass of theirs, at every width they take (on the Xeon,
        ms, fused / oneDNN's product, shuffle and sum: 64 -> 128 on 528^2 27.8 / 45.6, 128 on 264^2
        20.5 / 28.4, 256 on 132^2 19.5 / 23.6, 512 on 66^2 16.4 / 16.9); the same bytes at every thread
        count."""
        up = self.ups[i]
        if x.device.type == "cpu" and x.dtype == torch.float32 and not torch.compiler.is_compiling():
            lib = native.load()
            if (isinstance(lib, native.Library) and native.usable(x, lib) and native.up_skip_supported(lib, up)
                    and skip.dtype == torch.float32):
                made = self._native["up_skip", i] = native.remade(self._native.get(("up_skip", i)), up,
                                                                  lambda conv: (native.up_skip_weights(conv),))
                return native.up_skip(lib, made[1][0], x, skip)
        return F.pixel_shuffle(self._resample("up", i, x), 2) + skip

    def _ending(self, x: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        """The ending convolution (3x3, C -> 3) and the global residual. In fp32 on the CPU with the native
        kernels in one pass of theirs: oneDNN runs this thin convolution far below its speed on wide ones
        (1056 x 1056 x 32 on the Xeon: 35 ms, against 7-8 in the kernels)."""
        if x.device.type == "cpu" and x.dtype == torch.float32 and not torch.compiler.is_compiling():
            lib = native.load()
            if (isinstance(lib, native.Library) and native.usable(x, lib)
                    and native.ending_supported(lib, self.ending)):
                made = self._native["ending", 0] = native.remade(self._native.get(("ending", 0)), self.ending,
                                                                 native.ending_weights)
                return native.ending(lib, made[1], x, inp)
        return self.ending(x).float() + inp

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        m = self.size_multiple
        inp = F.pad(inp.float(), (0, (m - w % m) % m, 0, (m - h % m) % m)).contiguous(memory_format=CHANNELS_LAST)
        x = self.intro(inp.to(self.compute_dtype))
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x)
            skips.append(x)
            x = self._resample("down", i, x)
        x = self.middle_blks(x)
        for i, (decoder, skip) in enumerate(zip(self.decoders, skips[::-1], strict=True)):
            x = decoder(self._up_skip(i, x, skip))
        out = self._ending(x, inp)
        return out[..., :h, :w].contiguous()


def optimize(ref: NAFNet, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> FastNAFNet:
    """The fast equivalent of a reference ``NAFNet`` (eval mode, on its device). ``dtype`` is the compute
    type of weights and activations (statistics stay float32); the TLC setting is taken from ``ref`` now."""
    return build_fast(FastNAFNet, NAFNet, ref, dtype=dtype, fold_sca=fold_sca)  # type: ignore[return-value]
