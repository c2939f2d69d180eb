"""NAFSSR (Chu et al., "NAFSSR: Stereo Image Super-Resolution Using NAFNet", CVPRW 2022).

``net`` is the reference network (golden-tested), ``fast`` its rewrite for speed, ``spec`` the
hyperparameters and strip geometry, ``detect`` the reading of a state dict.
"""

from ..descriptor import Architecture
from .detect import detect
from .spec import NAFSSR_WINDOW, NAFSSRSpec, receptive_field

ARCHITECTURE = Architecture(name="nafssr", spec=NAFSSRSpec, tasks=("stereo-sr",), detect=detect)

__all__ = ["ARCHITECTURE", "NAFSSR_WINDOW", "NAFSSRSpec", "detect", "receptive_field"]
