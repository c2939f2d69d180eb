"""NAFSSR from its state-dict keys: a ``body`` of stereo blocks (NAFBlock + SCAM) and an ``up`` head."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...errors import InconsistentShapesError, UnknownArchitectureError
from ..keys import count_blocks, intro_channels
from .spec import NAFSSRSpec


def detect(state_dict: Mapping[str, Any], source: str) -> NAFSSRSpec | None:
    """The hyperparameters read from key names and shapes, or None when the keys are not NAFSSR's."""
    if "up.0.weight" not in state_dict or not any(k.startswith("body.") for k in state_dict):
        return None
    width, img_channel = intro_channels(state_dict, source)
    if not any(k.startswith("body.0.module.blk.") for k in state_dict):
        raise UnknownArchitectureError(f"{source}: unknown architecture (a 'body' that is not NAFSSR's)")
    num_blks = count_blocks(state_dict, "body.", source)
    without = [i for i in range(num_blks) if f"body.{i}.module.fusion.beta" not in state_dict]
    if without:
        raise UnknownArchitectureError(
            f"{source}: NAFSSR variant without cross-view attention in block {without[0]} "
            "(only SCAM in every block, as in the official models, is supported)"
        )
    up_out = int(state_dict["up.0.weight"].shape[0])
    scale = math.isqrt(up_out // img_channel) if up_out % img_channel == 0 else 0
    if scale < 1 or scale * scale * img_channel != up_out:
        raise InconsistentShapesError(
            f"{source}: 'up.0.weight' has {up_out} output channels, not {img_channel}*scale^2"
        )
    return NAFSSRSpec(up_scale=scale, width=width, num_blks=num_blks, img_channel=img_channel)
