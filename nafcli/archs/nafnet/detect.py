"""NAFNet from its state-dict keys: ``intro``/``ending`` convolutions and a U-Net of numbered blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import InconsistentShapesError
from ..keys import count_blocks, intro_channels
from .spec import NAFNetSpec


def detect(state_dict: Mapping[str, Any], source: str) -> NAFNetSpec | None:
    """The hyperparameters read from key names and shapes, or None when the keys are not NAFNet's.

    Only the hyperparameters are read here; the loader then checks every tensor against them.
    """
    if "ending.weight" not in state_dict or not any(k.startswith("encoders.") for k in state_dict):
        return None
    width, img_channel = intro_channels(state_dict, source)
    levels = count_blocks(state_dict, "encoders.", source)
    enc = tuple(count_blocks(state_dict, f"encoders.{i}.", source) for i in range(levels))
    dec_levels = count_blocks(state_dict, "decoders.", source)
    if dec_levels != levels:
        raise InconsistentShapesError(f"{source}: {levels} encoder levels but {dec_levels} decoder levels")
    dec = tuple(count_blocks(state_dict, f"decoders.{i}.", source) for i in range(dec_levels))
    middle = count_blocks(state_dict, "middle_blks.", source)
    return NAFNetSpec(width=width, enc_blk_nums=enc, middle_blk_num=middle, dec_blk_nums=dec,
                      img_channel=img_channel)
