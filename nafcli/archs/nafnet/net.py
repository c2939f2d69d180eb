"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022): a U-Net of NAFBlocks.

One class serves both test-time variants of the authors: ``tlc=False`` is their ``NAFNet`` and
``tlc=True`` their ``NAFNetLocal``. The two share every parameter; only the pooling in the channel
attention differs, so TLC can be switched on a loaded model with :meth:`NAFNet.set_tlc`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import NAFBlock
from ..tlc import MeanPool
from .spec import TRAIN_SIZE, nafnet_windows


class NAFNet(nn.Module):
    def __init__(
        self,
        *,
        width: int,
        enc_blk_nums: Sequence[int],
        middle_blk_num: int,
        dec_blk_nums: Sequence[int],
        img_channel: int = 3,
        tlc: bool = False,
        train_size: int = TRAIN_SIZE,
    ) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("enc_blk_nums and dec_blk_nums must have the same length")
        self.width = width
        self.enc_blk_nums = tuple(enc_blk_nums)
        self.middle_blk_num = middle_blk_num
        self.dec_blk_nums = tuple(dec_blk_nums)
        self.img_channel = img_channel
        self.train_size = train_size

        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        # Registration order follows the official state dicts: intro, ending, encoders, decoders,
        # middle_blks, ups, downs (reassigning middle_blks below keeps its place).
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()

        chan = width
        for num in self.enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(middle_blk_num)])
        for num in self.dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
        self.tlc = False
        self.set_tlc(tlc)

    @property
    def size_multiple(self) -> int:
        """Inputs are zero-padded to a multiple of this (one halving per encoder level)."""
        return 2 ** len(self.encoders)

    def _pools_by_level(self) -> list[tuple[int, MeanPool]]:
        n = len(self.encoders)
        stages = [(i, enc) for i, enc in enumerate(self.encoders)]
        stages.append((n, self.middle_blks))
        stages += [(n - 1 - j, dec) for j, dec in enumerate(self.decoders)]
        return [(level, blk.sca[0]) for level, seq in stages for blk in seq]

    def set_tlc(self, enabled: bool) -> NAFNet:
        """Use the TLC local mean (``NAFNetLocal``) or the global mean (``NAFNet``) in every block."""
        windows = nafnet_windows(len(self.encoders), train_size=self.train_size)
        for level, pool in self._pools_by_level():
            pool.window = windows[level] if enabled else None
        self.tlc = enabled
        return self

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        m = self.size_multiple
        inp = F.pad(inp, (0, (m - w % m) % m, 0, (m - h % m) % m))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, skips[::-1], strict=True):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[..., :h, :w]
