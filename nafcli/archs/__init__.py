"""The networks only: keyword-only hyperparameters, no I/O, no registry."""

from .blocks import LayerNorm2d, NAFBlock, SimpleGate
from .nafnet import NAFNet
from .nafssr import NAFSSR, SCAM
from .tlc import NAFSSR_WINDOW, local_mean, nafnet_windows

__all__ = [
    "NAFNet",
    "NAFSSR",
    "SCAM",
    "NAFBlock",
    "LayerNorm2d",
    "SimpleGate",
    "local_mean",
    "nafnet_windows",
    "NAFSSR_WINDOW",
]
