"""NAFNet's hyperparameters and what follows from them: TLC windows, tile geometry, the networks.

Kept free of torch at import: the registry and ``nafcli models list`` read specs without building them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..descriptor import MonoModel, Tiles
from ..windows import Window, window_for

if TYPE_CHECKING:
    from torch import dtype as TorchDtype
    from torch import nn

#: the crop side the official NAFNets were trained on (their TLC windows follow from it)
TRAIN_SIZE = 256
#: TLC models: automatic tiles are at least the level-0 window plus this. A tile no larger than the window
#: makes the local mean the tile's global mean (a TLC deblurring model gave 27 dB against the whole image
#: with 384-px tiles, 52 dB with 512-px ones)
TLC_TILE_MARGIN = 128
#: activations on the CPU, bytes per input pixel per unit of width (measured with ru_maxrss on the
#: width-32 architecture: ~2.2 kB per pixel at 512 x 512)
CPU_BYTES_PER_PX_PER_WIDTH = 80


def nafnet_windows(num_levels: int, *, train_size: int = TRAIN_SIZE) -> list[Window]:
    """Window of the TLC local mean at each U-Net level 0..num_levels (the last is the middle blocks):
    level ``i`` sees feature maps of ``train_size >> i`` at training size."""
    sides = [window_for(train_size >> level, train_size) for level in range(num_levels + 1)]
    return [(s, s) for s in sides]


@dataclass(frozen=True)
class NAFNetSpec:
    """NAFNet / NAFNetLocal hyperparameters, named as in the authors' configs."""

    width: int
    enc_blk_nums: tuple[int, ...]
    middle_blk_num: int
    dec_blk_nums: tuple[int, ...]
    img_channel: int = 3

    arch: ClassVar[str] = "nafnet"
    descriptor: ClassVar[type[MonoModel]] = MonoModel

    @property
    def scale(self) -> int:
        return 1

    @property
    def size_multiple(self) -> int:
        """Inputs are zero-padded to a multiple of this (one halving per encoder level)."""
        return 2 ** len(self.enc_blk_nums)

    def config(self) -> dict[str, Any]:
        """The hyperparameters as the authors' configs (and our manifests) spell them."""
        return {
            "width": self.width,
            "enc_blk_nums": list(self.enc_blk_nums),
            "middle_blk_num": self.middle_blk_num,
            "dec_blk_nums": list(self.dec_blk_nums),
        }

    def describe(self) -> str:
        enc = ",".join(map(str, self.enc_blk_nums))
        dec = ",".join(map(str, self.dec_blk_nums))
        return f"NAFNet width {self.width}, blocks [{enc}]/{self.middle_blk_num}/[{dec}]"

    def windows(self) -> list[Window]:
        return nafnet_windows(len(self.enc_blk_nums))

    def build(self, *, tlc: bool) -> nn.Module:
        from .net import NAFNet

        return NAFNet(
            width=self.width,
            enc_blk_nums=self.enc_blk_nums,
            middle_blk_num=self.middle_blk_num,
            dec_blk_nums=self.dec_blk_nums,
            img_channel=self.img_channel,
            tlc=tlc,
        )

    def fast(self, module: nn.Module, *, dtype: TorchDtype, fold_sca: bool = False) -> nn.Module:
        from .fast import optimize

        return optimize(module, dtype=dtype, fold_sca=fold_sca)  # type: ignore[arg-type]

    def tiling(self, *, tlc: bool) -> Tiles:
        return Tiles(
            size_multiple=self.size_multiple,
            min_tile=self.windows()[0][0] + TLC_TILE_MARGIN if tlc else 0,
            cpu_bytes_per_pixel=CPU_BYTES_PER_PX_PER_WIDTH * self.width,
        )
