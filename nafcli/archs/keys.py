"""Reading hyperparameters from state-dict keys: what the architecture detectors share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import InconsistentShapesError, UnknownArchitectureError


def intro_channels(state_dict: Mapping[str, Any], source: str) -> tuple[int, int]:
    """(width, image channels) from the ``intro`` 3x3 convolution every NAFNet-family network starts with."""
    intro = state_dict.get("intro.weight")
    if intro is None:
        raise UnknownArchitectureError(f"{source}: unknown architecture (no 'intro.weight'; not NAFNet/NAFSSR)")
    if intro.ndim != 4:
        raise InconsistentShapesError(f"{source}: 'intro.weight' has shape {list(intro.shape)}, not a conv")
    return int(intro.shape[0]), int(intro.shape[1])


def count_blocks(state_dict: Mapping[str, Any], prefix: str, source: str) -> int:
    """How many blocks ``{prefix}0.``, ``{prefix}1.``, … there are; they must be numbered 0..n-1."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})
    if found != list(range(len(found))):
        raise InconsistentShapesError(f"{source}: the blocks under {prefix!r} are not numbered 0..n-1")
    return len(found)
