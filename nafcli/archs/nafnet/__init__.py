"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022): denoising and deblurring.

``net`` is the reference network (the authors' computation, golden-tested), ``fast`` its rewrite for
speed, ``spec`` the hyperparameters and tile geometry, ``detect`` the reading of a state dict.
"""

from ..descriptor import Architecture
from .detect import detect
from .spec import NAFNetSpec, nafnet_windows

ARCHITECTURE = Architecture(name="nafnet", spec=NAFNetSpec, tasks=("denoise", "deblur"), detect=detect)

__all__ = ["ARCHITECTURE", "NAFNetSpec", "detect", "nafnet_windows"]
