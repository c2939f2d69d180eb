"""NAFNet on the fast path (see :mod:`nafcli.archs.fast_blocks` for what changes and why it is exact)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import native
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
        #: the convolutions the native kernels run outside the blocks, in their layout, and the weight each was
        #: made from
        self._native: dict[tuple[str, int], native.Made] = {}
        self.to(dtype=dtype, memory_format=CHANNELS_LAST)

    @staticmethod
    def _kernels(x: torch.Tensor) -> native.Library | None:
        """The native kernels when they take ``x`` (fp32 channels_last on the CPU, a width they were built
        for, not while compiling), else None."""
        if x.device.type != "cpu" or x.dtype != torch.float32 or torch.compiler.is_compiling():
            return None
        lib = native.load()
        return lib if isinstance(lib, native.Library) and native.usable(x, lib) else None

    def _made(self, name: str, i: int, conv: nn.Conv2d,
              make: Callable[[nn.Conv2d], tuple[torch.Tensor, ...]], layout: int = 0) -> tuple[torch.Tensor, ...]:
        """``conv``'s weights in a kernel's layout, made again when its weight or the layout (the build's
        vector width, for packed weights) has changed."""
        made = self._native[name, i] = native.remade(self._native.get((name, i)), conv, make, layout)
        return made[1]

    def _down(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The i-th down-sampling convolution (2x2 stride 2, C -> 2C): in the native kernels from
        :func:`nafcli.archs.native.native_down_from` channels on (a rule by CPU, from what was measured
        faster there; from 256 on always, for the bytes), narrower ones on oneDNN (the same bytes at both
        thread counts on the Xeon and the Zen 5 EPYC)."""
        conv = self.downs[i]
        lib = self._kernels(x) if conv.in_channels >= native.native_down_from() else None
        if lib is not None and native.down_supported(lib, conv, x):
            weights = self._made("down", i, conv, lambda c: native.down_weights(lib, c), lib.vector_width)
            return native.down(lib, weights, x)
        return conv(x)

    def _up_skip(self, i: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The i-th decoder level's input: the up-sampling product, its pixel shuffle and the skip sum. With
        the native kernels in one pass of theirs, at every width they take (on the Xeon, ms, fused / oneDNN's
        product, shuffle and sum: 64 -> 128 on 528^2 27.8 / 45.6, 128 on 264^2 20.5 / 28.4, 256 on 132^2
        19.5 / 23.6, 512 on 66^2 16.4 / 16.9); the same bytes at every thread count (oneDNN's 256 -> 512
        product is not, on the Zen 5 EPYC)."""
        up = self.ups[i]
        lib = self._kernels(x)
        if lib is not None and native.up_skip_supported(lib, up) and skip.dtype == torch.float32:
            weight = self._made("up_skip", i, up, lambda conv: (native.up_skip_weights(lib, conv),),
                                lib.vector_width)[0]
            return native.up_skip(lib, weight, x, skip)
        return F.pixel_shuffle(up(x), 2) + skip

    def _ending(self, x: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        """The ending convolution (3x3, C -> 3) and the global residual. With the native kernels in one pass
        of theirs: oneDNN runs this thin convolution far below its speed on wide ones (1056 x 1056 x 32 on
        the Xeon: 36.8 ms with the residual, against 15 in the kernels)."""
        lib = self._kernels(x)
        if lib is not None and native.ending_supported(lib, self.ending):
            return native.ending(lib, self._made("ending", 0, self.ending, native.ending_weights), x, inp)
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
            x = self._down(i, x)
        x = self.middle_blks(x)
        for i, (decoder, skip) in enumerate(zip(self.decoders, skips[::-1], strict=True)):
            x = decoder(self._up_skip(i, x, skip))
        out = self._ending(x, inp)
        return out[..., :h, :w].contiguous()


def optimize(ref: NAFNet, *, dtype: torch.dtype = torch.float32, fold_sca: bool = False) -> FastNAFNet:
    """The fast equivalent of a reference ``NAFNet`` (eval mode, on its device). ``dtype`` is the compute
    type of weights and activations (statistics stay float32); the TLC setting is taken from ``ref`` now."""
    return build_fast(FastNAFNet, NAFNet, ref, dtype=dtype, fold_sca=fold_sca)  # type: ignore[return-value]
